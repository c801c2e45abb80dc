"""One buyer, one identity over HTTP: the same number typed in full-width digits lands on
the same buyer; another script's digits are refused with a field-level problem."""

from __future__ import annotations

from tests.http.conftest import Api


def _report(api: Api, partner: str, phone: str) -> tuple[int, dict[str, object]]:
    agent_id, headers = api.principal("channel_agent", partner_id=partner)
    response = api.client.post(
        "/v1/reports",
        json={
            "project_id": api.project,
            "partner_id": partner,
            "agent_id": agent_id,
            "client_name": "韩梅梅",
            "phone": phone,
        },
        headers=headers,
    )
    body: dict[str, object] = response.json()
    return response.status_code, body


def test_a_full_width_number_is_the_same_buyer_and_is_rejected_as_protected(api: Api) -> None:
    status, first = _report(api, "p1", "13764472345")
    assert status == 201 and first["status"] == "accepted"

    status, second = _report(api, "p2", "13\uff17\uff16\uff14\uff14\uff17\uff12\uff13\uff14\uff15")

    assert status == 201
    assert second["status"] == "rejected" and second["reason"] == "protected"
    assert second["client_id"] == first["client_id"]


def test_arabic_indic_digits_are_refused_naming_the_phone_field(api: Api) -> None:
    _report(api, "p1", "13764472345")

    status, body = _report(
        api, "p2", "\u0661\u0663\u0667\u0666\u0664\u0664\u0667\u0662\u0663\u0664\u0665"
    )

    assert status == 422
    assert body["errors"] == [
        {"field": "phone", "message": body["errors"][0]["message"], "code": "invalid_phone"}  # type: ignore[index]
    ]
