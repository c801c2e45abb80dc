"""The people serving a buyer can work: contact (on the record, capped per day), profile
and notes; lookups are capped per hour and audited; nobody else sees any of it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.locator import DisputeLocator
from tests.http.conftest import Api, make_api
from tests.support import ctx, unique

Headers = dict[str, str]
PHONE = "13764472345"


@pytest.fixture
def small_caps(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(
        tmp_path, {"YINGKE_DISCLOSURES_PER_DAY": "3", "YINGKE_LOOKUPS_PER_HOUR": "2"}
    )


def walk_in(api: Api, headers: Headers, consultant_id: str, phone: str = PHONE) -> str:
    response = api.client.post(
        "/v1/visits",
        json={
            "project_id": api.project,
            "phone": phone,
            "client_name": "王小明",
            "consultant_id": consultant_id,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def lookup(api: Api, headers: Headers, phone: str = PHONE) -> Any:
    return api.client.post(
        "/v1/clients/lookup", json={"project_id": api.project, "phone": phone}, headers=headers
    )


def rows(api: Api, sql: str, *params: Any) -> list[Any]:
    api.container.follower.catch_up()
    return api.container.views.query(sql, params)


def test_the_owner_reads_contact_profile_and_notes_and_the_manager_sees_the_disclosure(
    api: Api,
) -> None:
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    _, manager = api.principal("manager", project_ids=[api.project])
    client_id = walk_in(api, owner, owner_id)
    api.client.post(
        f"/v1/clients/{client_id}/follow-ups",
        json={"method": "call", "summary": "首付三成，想要南向", "effective": True, "grade": "A"},
        headers=owner,
    )
    api.client.put(
        f"/v1/clients/{client_id}/profile",
        json={"budget_max": 3_000_000, "layouts": [3]},
        headers=owner,
    )

    contact = api.client.get(f"/v1/clients/{client_id}/contact", headers=owner)
    notes = api.client.get(f"/v1/clients/{client_id}/follow-ups", headers=owner)
    summary = api.client.get(f"/v1/clients/{client_id}", headers=owner)

    assert contact.status_code == 200, contact.text
    assert contact.json()["phone"] == PHONE and contact.json()["name"] == "王小明"
    assert [n["summary"] for n in notes.json()["follow_ups"]] == ["首付三成，想要南向"]
    assert notes.json()["follow_ups"][0]["grade"] == "A"
    assert summary.json()["profile"]["budget_max"] == 3_000_000
    history = api.client.get(f"/v1/clients/{client_id}/history", headers=manager).json()
    disclosed = [e for e in history["events"] if e["type"] == "ContactDisclosed"]
    assert [e["data"]["principal_id"] for e in disclosed] == [owner_id]
    assert disclosed[0]["correlation_id"] == contact.headers["X-Request-ID"]
    own_history = api.client.get(f"/v1/clients/{client_id}/history", headers=owner).json()
    assert all(e["type"] != "ContactDisclosed" for e in own_history["events"])
    table = rows(
        api,
        "SELECT principal_id, role, request_id FROM contact_disclosures WHERE client_id = ?",
        client_id,
    )
    assert [tuple(r) for r in table] == [(owner_id, "consultant", contact.headers["X-Request-ID"])]


def test_nobody_but_the_people_serving_the_buyer_gets_the_contact(api: Api) -> None:
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    client_id = walk_in(api, owner, owner_id)
    _, other = api.principal("consultant", project_ids=[api.project])
    _, foreign_manager = api.principal("manager", project_ids=["elsewhere"])
    _, auditor = api.principal("auditor")
    _, agent = api.principal("channel_agent", partner_id="p1")

    answers = {
        name: api.client.get(f"/v1/clients/{client_id}/{what}", headers=headers).status_code
        for name, headers in [
            ("other", other),
            ("foreign_manager", foreign_manager),
            ("auditor", auditor),
            ("agent", agent),
            ("admin", api.admin),
        ]
        for what in ("contact",)
    }

    assert answers == {
        "other": 404,
        "foreign_manager": 404,
        "auditor": 403,
        "agent": 403,
        "admin": 403,
    }
    assert api.client.get(f"/v1/clients/{client_id}/follow-ups", headers=other).status_code == 404
    summary = api.client.get(f"/v1/clients/{client_id}", headers=auditor).json()
    assert summary.get("profile") is None
    assert rows(api, "SELECT count(*) FROM contact_disclosures")[0][0] == 0


def test_the_disclosure_past_the_daily_cap_is_429(small_caps: Api) -> None:
    api = small_caps
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    client_id = walk_in(api, owner, owner_id)

    codes = [
        api.client.get(f"/v1/clients/{client_id}/contact", headers=owner).status_code
        for _ in range(4)
    ]
    refused = api.client.get(f"/v1/clients/{client_id}/contact", headers=owner)

    assert codes == [200, 200, 200, 429]
    assert refused.json()["code"] == "disclosure_limit"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["Retry-After"]) > 0
    assert rows(api, "SELECT count(*) FROM contact_disclosures")[0][0] == 3


def test_the_101st_disclosure_of_the_day_is_429_at_the_default_cap(api: Api) -> None:
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    client_id = walk_in(api, owner, owner_id)
    for _ in range(100):
        ok = api.client.get(f"/v1/clients/{client_id}/contact", headers=owner)
        assert ok.status_code == 200, ok.text

    refused = api.client.get(f"/v1/clients/{client_id}/contact", headers=owner)

    assert refused.status_code == 429 and refused.json()["code"] == "disclosure_limit"
    api.clock.advance(days=1)
    assert api.client.get(f"/v1/clients/{client_id}/contact", headers=owner).status_code == 200


def test_the_61st_lookup_of_the_hour_is_429_and_every_lookup_is_audited(api: Api) -> None:
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    walk_in(api, owner, owner_id)
    for n in range(60):
        answer = lookup(api, owner, PHONE if n % 2 else "13900000000")
        assert answer.status_code == (200 if n % 2 else 404), answer.text

    refused = lookup(api, owner)
    again = lookup(api, owner, "13900000000")

    assert refused.status_code == 429 and refused.json()["code"] == "lookup_limit"
    assert again.status_code == 429 and again.json() | {"instance": None, "request_id": None} == (
        refused.json() | {"instance": None, "request_id": None}
    )
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    audit = rows(
        api,
        "SELECT outcome, found, client_id IS NULL, count(*) FROM lookup_audit "
        "WHERE principal_id = ? GROUP BY outcome, found, client_id IS NULL",
        owner_id,
    )
    # The refused lookups are on record too, and record nothing of what they would find.
    assert sorted((o, bool(f), bool(none), n) for o, f, none, n in audit) == [
        ("found", True, False, 30),
        ("limited", False, True, 2),
        ("not_found", False, True, 30),
    ]
    [(request_id,)] = rows(
        api,
        "SELECT request_id FROM lookup_audit WHERE outcome = 'limited' AND request_id = ?",
        refused.headers["X-Request-ID"],
    )
    assert request_id == refused.headers["X-Request-ID"]
    api.clock.advance(hours=1)
    assert lookup(api, owner).status_code == 200


def test_only_consultants_supervisors_managers_and_services_may_look_up(
    small_caps: Api,
) -> None:
    api = small_caps
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    walk_in(api, owner, owner_id)
    allowed = {
        role: lookup(api, api.principal(role, project_ids=[api.project])[1]).status_code
        for role in ("consultant", "supervisor", "manager", "service", "auditor", "finance")
    }
    _, agent = api.principal("channel_agent", partner_id="p1")

    assert allowed == {
        "consultant": 200,
        "supervisor": 200,
        "manager": 200,
        "service": 200,
        "auditor": 403,
        "finance": 403,
    }
    assert lookup(api, agent).status_code == 403
    assert lookup(api, api.admin).status_code == 403


def test_an_erased_buyer_is_not_found_by_lookup(small_caps: Api) -> None:
    api = small_caps
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    client_id = walk_in(api, owner, owner_id)
    erased = api.client.post(f"/v1/clients/{client_id}/erasure", headers=api.admin)
    assert erased.status_code == 200, erased.text

    assert lookup(api, owner).status_code == 404
    assert api.client.get(f"/v1/clients/{client_id}/contact", headers=owner).status_code == 404


def test_a_rejected_channel_s_dispute_shows_nothing_of_the_competitor(api: Api) -> None:
    winner_id, winner = api.principal("channel_agent", partner_id="winner")
    loser_id, loser = api.principal("channel_agent", partner_id="loser")
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    _, manager = api.principal("manager", project_ids=[api.project])

    def file(agent_id: str, partner: str, headers: Headers) -> Any:
        return api.client.post(
            "/v1/reports",
            json={
                "project_id": api.project,
                "partner_id": partner,
                "agent_id": agent_id,
                "client_name": "韩梅梅",
                "phone": PHONE,
            },
            headers=headers,
        ).json()

    won = file(winner_id, "winner", winner)
    lost = file(loser_id, "loser", loser)
    client_id = walk_in(api, owner, owner_id)
    assert lost["status"] == "rejected"

    opened = api.client.post(
        f"/v1/clients/{client_id}/disputes",
        json={
            "claimant_id": "loser",
            "report_id": lost["report_id"],
            "reason": "我们先带看过",
            "evidence_versions": [1],
        },
        headers=loser,
    )
    assert opened.status_code == 201, opened.text
    seen = api.client.get(f"/v1/disputes/{opened.json()['dispute_id']}", headers=loser)
    full = api.client.get(f"/v1/disputes/{opened.json()['dispute_id']}", headers=manager)

    for text in (opened.text, seen.text):
        for secret in (owner_id, "winner", won["report_id"], winner_id):
            assert secret not in text
    assert seen.json()["status"] == "open" and seen.json()["reason"] == "我们先带看过"
    assert owner_id in full.text and full.json()["owner_at_opening"]["partner_id"] == "winner"


def test_no_response_shows_an_erased_buyer_s_masked_phone(small_caps: Api) -> None:
    api = small_caps
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    _, manager = api.principal("manager", project_ids=[api.project])
    client_id = walk_in(api, owner, owner_id)
    api.client.post(f"/v1/clients/{client_id}/erasure", headers=api.admin)

    summary = api.client.get(f"/v1/clients/{client_id}", headers=manager)
    history = api.client.get(f"/v1/clients/{client_id}/history", headers=manager)

    assert summary.status_code == history.status_code == 200
    for text in (summary.text, history.text):
        assert "137****2345" not in text and "王小明" not in text


def test_a_buyer_released_to_the_pool_is_served_by_the_managers_only(api: Api) -> None:
    # The attack: a buyer released to the public pool (公海池) belongs to everyone on the
    # project for claiming, and that used to open their full number, name, notes, profile
    # and free text to every consultant and supervisor there, the former owner included:
    # the list of the pool gave the ids, /contact the numbers.
    def person(role: str, team: str | None) -> tuple[str, Headers]:
        pid = unique(role)
        body: dict[str, Any] = {"id": pid, "role": role, "project_ids": [api.project]}
        if team:
            body["team_id"] = team
        created = api.client.post("/v1/principals", json=body, headers=api.admin)
        assert created.status_code == 201, created.text
        return pid, api.auth(created.json()["key"])

    owner_id, owner = person("consultant", "t1")
    _, colleague = person("consultant", "t2")
    _, other_supervisor = person("supervisor", "t2")
    _, supervisor = person("supervisor", "t1")
    _, manager = api.principal("manager", project_ids=[api.project])
    client_id = walk_in(api, owner, owner_id)
    path = f"/v1/clients/{client_id}"
    api.client.post(
        f"{path}/follow-ups",
        json={"method": "call", "summary": "王小明 住幸福小区", "effective": True},
        headers=owner,
    )
    api.client.post(f"{path}/grade", json={"grade": "C", "reason": "王小明 预算低"}, headers=owner)
    api.client.put(
        f"{path}/profile",
        json={"budget_max": 2_000_000, "source_detail": "王小明的同事"},
        headers=owner,
    )
    asked = api.client.post(
        f"{path}/loss-requests", json={"reason": "bought_elsewhere"}, headers=owner
    ).json()
    released = api.client.post(
        f"{path}/loss-requests/{asked['request_id']}/approve",
        json={"comment": "同意"},
        headers=manager,
    )
    assert released.json()["client_status"] == "pool", released.text
    missing = f"/v1/clients/{uuid.uuid4()}"

    for headers in (owner, colleague, supervisor, other_supervisor):
        for what in ("contact", "follow-ups"):
            answer = api.client.get(f"{path}/{what}", headers=headers)
            absent = api.client.get(f"{missing}/{what}", headers=headers)
            assert answer.status_code == 404, (what, answer.text)
            assert _problem(answer) == _problem(absent)
        # They still read the buyer masked, to decide whether to claim (the profile's codes
        # are the pool's tags anyway), but no name, number or free text.
        for read in ("", "/history"):
            seen = api.client.get(f"{path}{read}", headers=headers)
            assert seen.status_code == 200, seen.text
            for secret in ("王小明", "幸福", "预算低", "同事", PHONE):
                assert secret not in seen.text, (read, secret)
        assert api.client.get(path, headers=headers).json().get("profile") is None

    served = api.client.get(f"{path}/contact", headers=manager)
    assert served.status_code == 200 and served.json()["phone"] == PHONE
    assert "预算低" in api.client.get(f"{path}/history", headers=manager).text

    claimed = api.client.post(f"{path}/claims", json={}, headers=colleague)
    assert claimed.status_code == 201 and claimed.json()["status"] == "claimed", claimed.text
    assert api.client.get(f"{path}/contact", headers=colleague).json()["phone"] == PHONE
    assert api.client.get(f"{path}/contact", headers=owner).status_code == 404


def _problem(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body | {"instance": None, "request_id": None}


def test_districts_typed_into_the_profile_are_free_text(api: Api) -> None:
    # The attack: the profile's districts (意向区域) take any text, so a name and a number
    # typed there were shown to every reader of the history and survived erasure in the
    # profile, the history and the evidence bundle.
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    _, manager = api.principal("manager", project_ids=[api.project])
    _, auditor = api.principal("auditor")
    _, service = api.principal("service")
    client_id = walk_in(api, owner, owner_id)
    path = f"/v1/clients/{client_id}"
    typed = "王小明 13912345678 幸福小区"
    profile = {"districts": ["滨江区", typed], "budget_max": 3_000_000, "source_detail": "朋友"}
    assert api.client.put(f"{path}/profile", json=profile, headers=owner).status_code == 200

    assert api.client.get(path, headers=owner).json()["profile"]["districts"] == ["滨江区", typed]
    for reader in (owner, manager, auditor):
        assert typed in api.client.get(f"{path}/history", headers=reader).text
    outsider = api.client.get(f"{path}/history", headers=service)
    assert outsider.status_code == 200 and typed not in outsider.text

    erased = api.client.post(f"{path}/erasure", headers=api.admin)
    assert erased.status_code == 200, erased.text

    for url, headers in [
        (path, manager),
        (path, auditor),
        (f"{path}/history", manager),
        (f"{path}/history", auditor),
        (f"{path}/evidence", auditor),
        (f"{path}/ownership", auditor),
    ]:
        answer = api.client.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
        for secret in (typed, "13912345678", "王小明", "滨江区"):
            assert secret not in answer.text, (url, secret)


def test_a_rejected_channel_cannot_rename_the_buyer_for_the_owner(api: Api) -> None:
    # The attack: a channel whose report is rejected (`protected`) still wrote a name of
    # its choosing for the buyer, and the latest name anyone wrote was what the owner's
    # contact card, my day and the masked name showed: an outsider's text on the card.
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    rival_id, rival = api.principal("channel_agent", project_ids=[api.project], partner_id="rival")
    client_id = walk_in(api, owner, owner_id)
    injected = "渠道B请回电13900001111"
    filed = api.client.post(
        "/v1/reports",
        json={
            "project_id": api.project,
            "partner_id": "rival",
            "agent_id": rival_id,
            "client_name": injected,
            "phone": PHONE,
        },
        headers=rival,
    )
    assert filed.status_code == 201 and filed.json()["status"] == "rejected", filed.text

    contact = api.client.get(f"/v1/clients/{client_id}/contact", headers=owner)
    summary = api.client.get(f"/v1/clients/{client_id}", headers=owner)
    # My day is a view: read it at least as far as the rejected report.
    today = api.client.get(
        "/v1/me/today", params={"after": filed.headers["Yingke-Position"]}, headers=owner
    )

    assert contact.json()["name"] == "王小明"
    assert summary.json()["client_name_masked"] in (None, "王**")
    assert today.status_code == 200 and injected not in today.text
    assert "王小明" in today.text


def erase(api: Api, client_id: str) -> None:
    erased = api.client.post(f"/v1/clients/{client_id}/erasure", headers=api.admin)
    assert erased.status_code == 200, erased.text


def test_an_erased_buyer_who_walks_in_again_is_a_buyer_again(api: Api) -> None:
    """The attack (a returning buyer): erase a buyer; they walk in again. The import
    ended an erasure, a visit did not: lookup and /contact answered 404, so whoever
    serves the buyer now could not reach them, and the summary told everyone they were
    erased. Nothing from before the erasure may show again: the old name, the old
    profile, the old masks in the history."""
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    _, manager = api.principal("manager", project_ids=[api.project])
    client_id = walk_in(api, owner, owner_id)
    old = api.client.put(
        f"/v1/clients/{client_id}/profile", json={"districts": ["旧区域"]}, headers=owner
    )
    assert old.status_code < 300, old.text
    erase(api, client_id)

    visit = {"project_id": api.project, "phone": PHONE, "consultant_id": owner_id}
    back = api.client.post("/v1/visits", json={**visit, "client_name": "李新"}, headers=owner)
    assert back.status_code == 201, back.text
    assert back.json()["client_id"] == client_id

    found = lookup(api, owner)
    assert found.status_code == 200, found.text
    assert found.json()["client_id"] == client_id
    contact = api.client.get(f"/v1/clients/{client_id}/contact", headers=owner)
    assert contact.status_code == 200, contact.text
    assert (contact.json()["phone"], contact.json()["name"]) == (PHONE, "李新")
    summary = api.client.get(f"/v1/clients/{client_id}", headers=manager)
    assert summary.json()["personal_data_erased"] is False, summary.text
    assert "旧区域" not in summary.text and "王小明" not in summary.text
    history = api.client.get(f"/v1/clients/{client_id}/history", headers=manager)
    assert "王小明" not in history.text and "旧区域" not in history.text
    visits = [e for e in history.json()["events"] if e["type"] == "ClientVisited"]
    assert visits[0]["data"]["personal_data"] == "erased"
    assert visits[-1]["data"]["client_name_masked"] == "李*"
    overview = "SELECT personal_data_erased, phone_masked FROM client_overview WHERE client_id = ?"
    assert [(bool(e), m) for e, m in rows(api, overview, client_id)] == [(False, "137****2345")]

    erase(api, client_id)  # and again: the new key goes too
    assert lookup(api, owner).status_code == 404
    assert api.client.get(f"/v1/clients/{client_id}/contact", headers=owner).status_code == 404


def test_an_erased_buyer_reported_again_is_a_buyer_again(api: Api) -> None:
    """A channel's new report (报备) of an erased buyer's number brings the buyer back as
    a walk-in does: the number under a fresh key, the old name gone."""
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    agent_id, agent = api.principal("channel_agent", partner_id="ch-back")
    report = {
        "project_id": api.project,
        "partner_id": "ch-back",
        "agent_id": agent_id,
        "client_name": "王小明",
        "phone": PHONE,
    }
    before = api.client.post("/v1/reports", json=report, headers=agent)
    assert before.status_code == 201, before.text
    client_id = walk_in(api, owner, owner_id)
    erase(api, client_id)

    filed = api.client.post("/v1/reports", json={**report, "client_name": "李新"}, headers=agent)
    assert filed.status_code == 201, filed.text
    assert filed.json()["client_id"] == client_id

    assert lookup(api, owner).status_code == 200
    contact = api.client.get(f"/v1/clients/{client_id}/contact", headers=owner)
    assert contact.status_code == 200, contact.text
    assert contact.json()["phone"] == PHONE and "王小明" not in contact.text
    seen = api.client.get(f"/v1/reports/{filed.json()['report_id']}", headers=agent)
    assert seen.status_code == 200, seen.text
    assert seen.json()["phone_masked"] == "137****2345"
    # The report from before the erasure stays as erased as its buyer was.
    old = api.client.get(f"/v1/reports/{before.json()['report_id']}", headers=agent)
    assert old.status_code == 200, old.text
    assert old.json()["phone_masked"] == "***********" and old.json()["client_name_masked"] is None


def test_a_returned_buyer_s_dispute_text_from_before_the_erasure_stays_erased(api: Api) -> None:
    """Dispute reasons stored in clear (before sealing, ADR 0045) were judged by
    ``client.erased``: once the buyer came back, the old reason showed again."""
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    rival_id, _ = api.principal("consultant", project_ids=[api.project])
    _, manager = api.principal("manager", project_ids=[api.project])
    client_id = walk_in(api, owner, owner_id)
    app = api.container
    dispute_id = str(uuid.uuid4())
    said = ctx()

    def clear_text_dispute(now: Any) -> tuple[list[Any], None]:
        client = app.clients.client(uuid.UUID(client_id))
        client.open_dispute(
            dispute_id=dispute_id,
            claimant_kind="consultant",
            claimant_id=rival_id,
            report_id=None,
            reason="王小明 13764472345 是我的客户",
            evidence_versions=[1],
            at=now,
            trace=said.trace,
        )
        locator = DisputeLocator.place(dispute_id, client.id, now, said.trace)
        return [client, locator], None

    app.clients.uow.run(said, clear_text_dispute)
    shown = api.client.get(f"/v1/disputes/{dispute_id}", headers=manager)
    assert shown.json()["reason"] == "王小明 13764472345 是我的客户"  # read before erasure
    erase(api, client_id)
    back = api.client.post(
        "/v1/visits",
        json={
            "project_id": api.project,
            "phone": PHONE,
            "client_name": "李新",
            "consultant_id": owner_id,
        },
        headers=owner,
    )
    assert back.status_code == 201, back.text

    again = api.client.get(f"/v1/disputes/{dispute_id}", headers=manager)
    assert again.status_code == 200, again.text
    assert again.json()["reason"] == "[erased]", again.text
    bundle = api.client.get(f"/v1/clients/{client_id}/evidence", headers=manager)
    assert bundle.status_code == 200, bundle.text
    assert "13764472345" not in bundle.text and "王小明" not in bundle.text
