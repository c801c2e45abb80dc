"""The HTTP API end to end through the ASGI app, on the embedded SQLite store."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import Api

PHONE = "13812345678"


def report_body(
    api: Api, partner: str, agent: str, phone: str = PHONE, **extra: Any
) -> dict[str, Any]:
    return {
        "project_id": api.project,
        "partner_id": partner,
        "agent_id": agent,
        "client_name": "王小明",
        "phone": phone,
        **extra,
    }


def agent(api: Api, partner: str) -> tuple[str, dict[str, str]]:
    return api.principal("channel_agent", partner_id=partner)


def consultant(api: Api) -> tuple[str, dict[str, str]]:
    return api.principal("consultant", project_ids=[api.project])


# ----------------------------------------------------------------------- auth


def test_requests_without_a_key_are_refused_with_401_problem(api: Api) -> None:
    response = api.client.get(f"/v1/projects/{api.project}/policy")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthenticated"


def test_an_unknown_key_is_refused(api: Api) -> None:
    headers = api.auth("yk1.bm9ib2R5.not-a-real-key")
    assert api.client.get(f"/v1/projects/{api.project}/policy", headers=headers).status_code == 401


def test_a_role_that_may_not_act_gets_403(api: Api) -> None:
    _, auditor = api.principal("auditor")
    response = api.client.post("/v1/reports", json=report_body(api, "A", "x"), headers=auditor)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_a_principal_key_is_shown_once_and_revocation_takes_effect_at_once(api: Api) -> None:
    pid, headers = consultant(api)
    path = f"/v1/projects/{api.project}/policy"
    assert api.client.get(path, headers=headers).status_code == 200
    shown = api.client.get(f"/v1/principals/{pid}", headers=api.admin).json()
    assert shown["key"] is None and shown["revoked"] is False
    revoked = api.client.delete(f"/v1/principals/{pid}", headers=api.admin)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert api.client.get(path, headers=headers).status_code == 401


def test_registering_the_same_principal_twice_is_a_conflict(api: Api) -> None:
    pid, _ = consultant(api)
    again = {"id": pid, "role": "consultant", "project_ids": [api.project]}
    response = api.client.post("/v1/principals", json=again, headers=api.admin)
    assert response.status_code == 409


def test_a_consultant_needs_a_project_and_an_agent_needs_a_partner(api: Api) -> None:
    bad = api.client.post(
        "/v1/principals", json={"id": "c-x", "role": "consultant"}, headers=api.admin
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "project_ids"
    bad = api.client.post(
        "/v1/principals", json={"id": "a-x", "role": "channel_agent"}, headers=api.admin
    )
    assert bad.json()["errors"][0]["field"] == "partner_id"


# --------------------------------------------------------------------- policy


def test_policy_versions_are_kept_and_old_ones_can_be_read(api: Api) -> None:
    path = f"/v1/projects/{api.project}/policy"
    default = api.client.get(path, headers=api.admin).json()
    assert default["version"] == 0 and default["judge_rule"] == "report_first"
    first = api.client.put(path, json={"judge_rule": "visit_first"}, headers=api.admin)
    assert first.status_code == 200 and first.json()["version"] == 1
    second = api.client.put(path, json={"protection": "P15D"}, headers=api.admin)
    assert second.json()["version"] == 2
    assert second.json()["judge_rule"] == "report_first"  # PUT replaces: omitted → default
    old = api.client.get(path, params={"version": 1}, headers=api.admin).json()
    assert old["judge_rule"] == "visit_first" and old["protection"] == "P30D"
    missing = api.client.get(path, params={"version": 9}, headers=api.admin)
    assert missing.status_code == 404


def test_a_stale_if_match_on_policy_is_a_conflict(api: Api) -> None:
    path = f"/v1/projects/{api.project}/policy"
    api.client.put(path, json={}, headers=api.admin)
    stale = api.client.put(path, json={}, headers={**api.admin, "If-Match": "0"})
    assert stale.status_code == 409
    fresh = api.client.put(path, json={}, headers={**api.admin, "If-Match": "1"})
    assert fresh.status_code == 200 and fresh.json()["version"] == 2


def test_a_bad_duration_is_a_field_error_and_changes_nothing(api: Api) -> None:
    path = f"/v1/projects/{api.project}/policy"
    response = api.client.put(path, json={"report_validity": "P1M"}, headers=api.admin)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "report_validity",
            "message": response.json()["errors"][0]["message"],
            "code": "invalid_duration",
        }
    ]
    assert api.client.get(path, headers=api.admin).json()["version"] == 0


def test_a_manager_may_set_policy_only_for_granted_projects(api: Api) -> None:
    _, manager = api.principal("manager", project_ids=[api.project])
    ok = api.client.put(f"/v1/projects/{api.project}/policy", json={}, headers=manager)
    assert ok.status_code == 200
    other = api.client.put("/v1/projects/elsewhere/policy", json={}, headers=manager)
    assert other.status_code == 403


# -------------------------------------------------------------------- reports


def test_a_report_is_accepted_and_a_competing_one_rejected_without_naming_the_winner(
    api: Api,
) -> None:
    a_id, a = agent(api, "partner-a")
    b_id, b = agent(api, "partner-b")
    first = api.client.post("/v1/reports", json=report_body(api, "partner-a", a_id), headers=a)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "accepted"
    assert first.json()["phone_masked"] == "138****5678"
    assert int(first.headers["Yingke-Position"]) > 0
    second = api.client.post(
        "/v1/reports", json=report_body(api, "partner-b", b_id, "+86 138-1234-5678"), headers=b
    )
    assert second.status_code == 201
    assert second.json()["status"] == "rejected" and second.json()["reason"] == "protected"
    assert "partner-a" not in second.text
    mine = api.client.get(f"/v1/reports/{second.json()['report_id']}", headers=b)
    assert mine.status_code == 200 and mine.json()["status"] == "rejected"


def test_a_channel_agent_cannot_read_another_channels_report(api: Api) -> None:
    a_id, a = agent(api, "partner-a")
    _, b = agent(api, "partner-b")
    filed = api.client.post("/v1/reports", json=report_body(api, "partner-a", a_id), headers=a)
    response = api.client.get(f"/v1/reports/{filed.json()['report_id']}", headers=b)
    assert response.status_code == 404


def test_a_channel_agent_files_only_for_its_own_partner(api: Api) -> None:
    a_id, a = agent(api, "partner-a")
    response = api.client.post("/v1/reports", json=report_body(api, "partner-b", a_id), headers=a)
    assert response.status_code == 403


def test_a_bad_phone_gets_a_field_error_and_records_nothing(api: Api) -> None:
    a_id, a = agent(api, "partner-a")
    before = api.container.position()
    response = api.client.post(
        "/v1/reports", json=report_body(api, "partner-a", a_id, "021-12345678"), headers=a
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "phone"
    assert api.container.position() == before


def test_unknown_and_missing_fields_are_named(api: Api) -> None:
    a_id, a = agent(api, "partner-a")
    body = report_body(api, "partner-a", a_id, color="red")
    del body["client_name"]
    response = api.client.post("/v1/reports", json=body, headers=a)
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"client_name", "color"}


def test_a_masked_report_is_refused_when_the_policy_forbids_it(api: Api) -> None:
    api.client.put(
        f"/v1/projects/{api.project}/policy",
        json={"masked_reports": "forbidden"},
        headers=api.admin,
    )
    a_id, a = agent(api, "partner-a")
    response = api.client.post(
        "/v1/reports", json=report_body(api, "partner-a", a_id, "138****5678"), headers=a
    )
    assert response.status_code == 201
    assert response.json()["status"] == "rejected"
    assert response.json()["reason"] == "masked_not_allowed"
    assert response.json()["client_id"] is None
    assert response.json()["policy_version"] == 1


def test_expected_visit_outside_validity_is_a_field_error(api: Api) -> None:
    a_id, a = agent(api, "partner-a")
    late = (api.clock.now.replace(year=2027)).isoformat()
    response = api.client.post(
        "/v1/reports", json=report_body(api, "partner-a", a_id, expected_visit_at=late), headers=a
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "expected_visit_at"


# --------------------------------------------------------------------- visits


def test_a_visit_awards_the_reporting_channel_and_history_shows_why(api: Api) -> None:
    a_id, a = agent(api, "partner-a")
    c_id, c = consultant(api)
    filed = api.client.post("/v1/reports", json=report_body(api, "partner-a", a_id), headers=a)
    api.clock.advance(hours=20)
    visit = api.client.post(
        "/v1/visits",
        json={
            "project_id": api.project,
            "phone": PHONE,
            "client_name": "王小明",
            "consultant_id": c_id,
        },
        headers={**c, "X-Request-ID": "visit-req-1"},
    )
    assert visit.status_code == 201, visit.text
    assert visit.headers["X-Request-ID"] == "visit-req-1"
    owner = visit.json()["owner"]
    assert owner["status"] == "owned" and owner["basis"] == "report"
    assert owner["partner_id"] == "partner-a" and owner["consultant_id"] == c_id
    assert owner["report_id"] == filed.json()["report_id"]
    client_id = visit.json()["client_id"]

    history = api.client.get(f"/v1/clients/{client_id}/history", headers=c).json()
    types = [e["type"] for e in history["events"]]
    assert types == [
        "ClientRegistered",
        "ReportFiled",
        "ReportAccepted",
        "ClientVisited",
        "ReportConfirmed",
        "OwnershipAwarded",
        "ScheduleUpdated",
    ]
    awarded = history["events"][-2]
    assert awarded["actor"] == {"id": c_id, "role": "consultant"}
    assert awarded["correlation_id"] == "visit-req-1"
    assert PHONE not in str(history) and "王小明" not in str(history)
    assert history["events"][1]["data"]["client_name_masked"] == "王**"


def test_ownership_as_of_replays_the_stream(api: Api) -> None:
    a_id, a = agent(api, "partner-a")
    c_id, c = consultant(api)
    before_anything = api.clock.now
    api.clock.advance(minutes=1)
    api.client.post("/v1/reports", json=report_body(api, "partner-a", a_id), headers=a)
    api.clock.advance(hours=1)
    reported_moment = api.clock.now
    api.clock.advance(hours=1)
    visit = api.client.post(
        "/v1/visits",
        json={
            "project_id": api.project,
            "phone": PHONE,
            "client_name": "王小明",
            "consultant_id": c_id,
        },
        headers=c,
    ).json()
    path = f"/v1/clients/{visit['client_id']}/ownership"
    expectations = [
        (before_anything, "none"),
        (reported_moment, "reported"),
        (api.clock.now, "owned"),
    ]
    for moment, status in expectations:
        answer = api.client.get(path, params={"at": moment.isoformat()}, headers=c)
        assert answer.status_code == 200, answer.text
        assert answer.json()["owner"]["status"] == status
    owned = api.client.get(path, params={"at": api.clock.now.isoformat()}, headers=c).json()
    assert owned["decided_by"]["type"] == "OwnershipAwarded"
    assert owned["policy_version"] == 0
    naive = api.client.get(path, params={"at": "2026-03-03T10:00:00"}, headers=c)
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "at"


def test_a_visit_with_an_unknown_consultant_is_a_field_error(api: Api) -> None:
    _, c = consultant(api)
    response = api.client.post(
        "/v1/visits",
        json={
            "project_id": api.project,
            "phone": PHONE,
            "client_name": "王小明",
            "consultant_id": "nobody",
        },
        headers=c,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "consultant_id"


def test_lookup_finds_the_client_by_any_spelling_of_the_phone(api: Api) -> None:
    c_id, c = consultant(api)
    visit = api.client.post(
        "/v1/visits",
        json={
            "project_id": api.project,
            "phone": PHONE,
            "client_name": "王小明",
            "consultant_id": c_id,
        },
        headers=c,
    ).json()
    assert visit["owner"]["basis"] == "walk_in"
    found = api.client.post(
        "/v1/clients/lookup",
        json={"project_id": api.project, "phone": "8613812345678"},
        headers=c,
    )
    assert found.json() == {"client_id": visit["client_id"]}
    missing = api.client.post(
        "/v1/clients/lookup",
        json={"project_id": api.project, "phone": "13900000000"},
        headers=c,
    )
    assert missing.status_code == 404
    state = api.client.get(f"/v1/clients/{visit['client_id']}", headers=c).json()
    assert state["phone_masked"] == "138****5678" and state["visits"] == 1
    assert state["client_name_masked"] is None  # no report carried a name yet


def test_staff_of_another_project_do_not_see_the_client(api: Api) -> None:
    c_id, c = consultant(api)
    _, stranger = api.principal("consultant", project_ids=["another-project"])
    visit = api.client.post(
        "/v1/visits",
        json={
            "project_id": api.project,
            "phone": PHONE,
            "client_name": "王小明",
            "consultant_id": c_id,
        },
        headers=c,
    ).json()
    assert api.client.get(f"/v1/clients/{visit['client_id']}", headers=stranger).status_code == 404


# ---------------------------------------------------------------- idempotency


def test_the_same_idempotency_key_and_body_returns_the_first_answer_and_records_nothing(
    api: Api,
) -> None:
    a_id, a = agent(api, "partner-a")
    headers = {**a, "Idempotency-Key": "report-001"}
    first = api.client.post(
        "/v1/reports", json=report_body(api, "partner-a", a_id), headers=headers
    )
    position = api.container.position()
    again = api.client.post(
        "/v1/reports", json=report_body(api, "partner-a", a_id), headers=headers
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.container.position() == position
    other = api.client.post(
        "/v1/reports", json=report_body(api, "partner-a", a_id, "13900001111"), headers=headers
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert api.container.position() == position


def test_a_replayed_principal_creation_does_not_show_the_key_again(api: Api) -> None:
    body = {"id": "svc-1", "role": "service"}
    headers = {**api.admin, "Idempotency-Key": "svc-1-create"}
    first = api.client.post("/v1/principals", json=body, headers=headers)
    assert first.json()["key"].startswith("yk1.")
    again = api.client.post("/v1/principals", json=body, headers=headers)
    assert again.status_code == 201 and again.json()["key"] is None


# -------------------------------------------------------------- privacy, health


def test_erasure_destroys_personal_data_but_keeps_the_stream(api: Api) -> None:
    a_id, a = agent(api, "partner-a")
    filed = api.client.post("/v1/reports", json=report_body(api, "partner-a", a_id), headers=a)
    client_id = filed.json()["client_id"]
    erased = api.client.post(f"/v1/clients/{client_id}/erasure", headers=api.admin)
    assert erased.status_code == 200 and erased.json()["personal_data_erased"] is True
    history = api.client.get(f"/v1/clients/{client_id}/history", headers=api.admin).json()
    filed_event = history["events"][1]
    assert filed_event["type"] == "ReportFiled"
    assert filed_event["data"]["personal_data"] == "erased"
    assert history["events"][-1]["type"] == "PersonalDataErased"


def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_openapi_documents_every_endpoint(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/principals",
        "/v1/principals/{principal_id}",
        "/v1/projects/{project_id}/policy",
        "/v1/reports",
        "/v1/reports/{report_id}",
        "/v1/visits",
        "/v1/clients/lookup",
        "/v1/clients/{client_id}",
        "/v1/clients/{client_id}/history",
        "/v1/clients/{client_id}/ownership",
        "/healthz",
        "/readyz",
    ):
        assert path in paths
