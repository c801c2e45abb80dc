"""The working day over HTTP: an approver's inbox, the pool for consultants, my day."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import Api
from tests.http.test_aftercare_api import lose, set_policy, visit
from tests.support import unique

Headers = dict[str, str]


def person(
    api: Api, role: str, name: str, team: str | None = None, project: str | None = None
) -> tuple[str, Headers]:
    pid = unique(role[:3])
    body: dict[str, Any] = {
        "id": pid,
        "role": role,
        "project_ids": [project or api.project],
        "display_name": name,
    }
    if team is not None:
        body["team_id"] = team
    response = api.client.post("/v1/principals", json=body, headers=api.admin)
    assert response.status_code == 201, response.text
    return pid, api.auth(response.json()["key"])


def read(api: Api, path: str, headers: Headers, **params: Any) -> Any:
    response = api.client.get(
        path, params={"after": api.container.position(), **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def act(api: Api, link: dict[str, str], headers: Headers, body: dict[str, Any]) -> Any:
    return api.client.request(link["method"], link["path"], json=body, headers=headers)


def ask_loss(api: Api, client_id: str, headers: Headers) -> str:
    asked = api.client.post(
        f"/v1/clients/{client_id}/loss-requests",
        json={"reason": "price", "note": "嫌贵"},
        headers=headers,
    )
    assert asked.status_code == 201, asked.text
    request_id: str = asked.json()["request_id"]
    return request_id


# ------------------------------------------------------------------- inbox


def test_a_supervisor_decides_a_loss_request_from_the_inbox(api: Api) -> None:
    team = unique("team")
    _, supervisor = person(api, "supervisor", "张主管", team)
    mine_id, mine = person(api, "consultant", "王芳", team)
    theirs_id, theirs = person(api, "consultant", "赵强", unique("team"))
    _, manager = person(api, "manager", "刘经理")
    client_id = visit(api, mine_id, mine, phone="13812340001")
    other_client = visit(api, theirs_id, theirs, phone="13812340002")
    request_id = ask_loss(api, client_id, mine)
    ask_loss(api, other_client, theirs)
    api.clock.advance(hours=5)

    box = read(api, "/v1/inbox", supervisor)

    assert box["counts"] == {"loss_request": 1, "claim": 0}
    (item,) = box["items"]
    assert item["kind"] == "loss_request" and item["id"] == request_id
    assert item["buyer"]["phone_masked"] == "138****0001"
    assert item["buyer"]["name_masked"] == "李*"
    assert item["requested_by"] == mine_id and item["requested_by_name"] == "王芳"
    assert item["consultant_name"] == "王芳"
    assert item["reason"] == "price" and item["note"] == "嫌贵"
    assert item["age_hours"] == 5
    assert item["opened_at"].endswith("+08:00")
    approve = next(a for a in item["actions"] if a["action"] == "approve")

    decided = act(api, approve, supervisor, {"comment": "同意"})

    assert decided.status_code == 200, decided.text
    assert read(api, "/v1/inbox", supervisor)["items"] == []
    # A second approver acting on the same link loses the race cleanly.
    late = act(api, approve, manager, {"comment": "同意"})
    assert late.status_code == 409 and late.json()["code"] == "decided"
    # The manager sees the other team's request too, and every kind is counted.
    managed = read(api, "/v1/inbox", manager)
    assert managed["counts"]["loss_request"] == 1
    assert set(managed["counts"]) == {"loss_request", "claim", "dispute", "appeal", "departure"}
    assert [i["consultant_id"] for i in managed["items"]] == [theirs_id]


def test_a_pending_pool_claim_waits_in_the_inbox_and_is_approved_from_it(api: Api) -> None:
    set_policy(api, pool_claim_approval=True)
    team = unique("team")
    _, supervisor = person(api, "supervisor", "张主管", team)
    owner_id, owner = person(api, "consultant", "王芳", team)
    claimant_id, claimant = person(api, "consultant", "孙丽", team)
    client_id = visit(api, owner_id, owner, phone="13812340003")
    lose(api, client_id, owner, supervisor)
    pending = api.client.post(f"/v1/clients/{client_id}/claims", json={}, headers=claimant)
    assert pending.status_code == 201 and pending.json()["status"] == "pending", pending.text

    (item,) = read(api, "/v1/inbox", supervisor, kind="claim")["items"]
    assert item["requested_by_name"] == "孙丽" and item["consultant_id"] == claimant_id
    approve = next(a for a in item["actions"] if a["action"] == "approve")
    assert act(api, approve, supervisor, {}).status_code == 200
    assert read(api, "/v1/inbox", supervisor)["counts"]["claim"] == 0


def test_a_manager_sees_open_disputes_with_the_link_to_rule(api: Api) -> None:
    _, manager = person(api, "manager", "刘经理")
    owner_id, owner = person(api, "consultant", "王芳")
    rival_id, rival = person(api, "consultant", "赵强")
    client_id = visit(api, owner_id, owner, phone="13812340004")
    opened = api.client.post(
        f"/v1/clients/{client_id}/disputes",
        json={"claimant_id": rival_id, "reason": "我先接待的", "evidence_versions": [1]},
        headers=rival,
    )
    assert opened.status_code == 201, opened.text

    box = read(api, "/v1/inbox", manager, kind="dispute")
    (item,) = box["items"]
    assert item["requested_by"] == rival_id and item["reason"] == "我先接待的"
    assert item["consultant_id"] == owner_id
    assert {a["action"] for a in item["actions"]} == {"rule", "read"}
    assert box["counts"] == {"dispute": 1}


def test_consultants_have_no_inbox(api: Api) -> None:
    _, consultant = person(api, "consultant", "王芳")
    assert api.client.get("/v1/inbox", headers=consultant).status_code == 403


# -------------------------------------------------------------------- pool


def test_a_consultant_browses_the_pool_and_claims_from_it(api: Api) -> None:
    _, supervisor = person(api, "supervisor", "张主管")
    owner_id, owner = person(api, "consultant", "王芳")
    claimant_id, claimant = person(api, "consultant", "孙丽")
    _, elsewhere = person(api, "consultant", "周杰", project=unique("proj"))
    client_id = visit(api, owner_id, owner, phone="13812340005")
    profile = api.client.put(
        f"/v1/clients/{client_id}/profile",
        json={"purpose": "self_use", "layouts": [3], "budget_min": 3000000, "focus": ["school"]},
        headers=owner,
    )
    assert profile.status_code == 200, profile.text
    api.client.post(
        f"/v1/clients/{client_id}/grade", json={"grade": "B", "reason": "预算合适"}, headers=owner
    )
    lose(api, client_id, owner, supervisor)
    api.clock.advance(days=2, hours=1)

    pool = read(api, "/v1/clients", claimant, status="pool")["items"]

    (row,) = pool
    assert row["client_id"] == client_id
    assert row["phone_masked"] == "138****0005" and row["grade"] == "B"
    assert row["release_reason"] == "lost" and row["days_in_pool"] == 2
    assert row["tags"] == ["purpose:self_use", "rooms:3", "budget:3000000-", "focus:school"]
    assert read(api, "/v1/clients", supervisor, status="pool")["items"][0]["client_id"] == (
        client_id
    )
    assert read(api, "/v1/clients", elsewhere, status="pool")["items"] == []
    # Without status=pool a consultant still sees only their own buyers.
    assert read(api, "/v1/clients", claimant)["items"] == []

    claimed = api.client.post(f"/v1/clients/{row['client_id']}/claims", json={}, headers=claimant)

    assert claimed.status_code == 201, claimed.text
    assert read(api, "/v1/clients", claimant, status="pool")["items"] == []
    (mine,) = read(api, "/v1/clients", claimant)["items"]
    assert mine["consultant_id"] == claimant_id and mine["consultant_name"] == "孙丽"


# ------------------------------------------------------------------ my day


def test_my_day_shows_due_follow_ups_with_the_buyers_name_to_the_owner(api: Api) -> None:
    set_policy(api, first_follow_up="PT2H", protection="P5D", protection_extension="P1D")
    owner_id, owner = person(api, "consultant", "王芳")
    _, supervisor = person(api, "supervisor", "张主管")
    due_client = visit(api, owner_id, owner, phone="13812340006")
    asked_client = visit(api, owner_id, owner, phone="13812340007")
    request_id = ask_loss(api, asked_client, owner)

    day = read(api, "/v1/me/today", owner)

    assert day["display_name"] == "王芳" and day["now"].endswith("+08:00")
    assert day["date"] == "2026-03-03"  # 10:00 in Shanghai
    assert day["counts"]["due_today"] == 2 and day["counts"]["overdue"] == 0
    task = next(t for t in day["due_today"] if t["client_id"] == due_client)
    assert task["buyer_name"] == "李雷" and task["phone_masked"] == "138****0006"
    assert task["due_at"] == "2026-03-03T12:00:00+08:00"
    assert day["counts"]["protection_ending_7_days"] == 2
    assert day["counts"]["protection_ending_3_days"] == 0
    assert {a["client_id"] for a in day["new_assignments"]} == {due_client, asked_client}
    (mine,) = day["pending_requests"]
    assert mine["kind"] == "loss_request" and mine["id"] == request_id

    api.clock.advance(hours=3)
    later = read(api, "/v1/me/today", owner)
    assert later["counts"]["overdue"] == 2 and later["overdue"][0]["overdue_hours"] == 1

    # Someone else's day never shows these buyers, nor their names.
    other_day = read(api, "/v1/me/today", supervisor)
    assert other_day["counts"]["overdue"] == 0 and other_day["overdue"] == []


def test_my_day_follows_the_projects_time_zone(api: Api) -> None:
    set_policy(api, first_follow_up="PT2H", time_zone="Europe/Berlin")
    owner_id, owner = person(api, "consultant", "王芳")
    visit(api, owner_id, owner, phone="13812340008")
    day = read(api, "/v1/me/today", owner)
    assert day["now"] == "2026-03-03T03:00:00+01:00"
    assert day["due_today"][0]["due_at"] == "2026-03-03T05:00:00+01:00"


def test_an_unknown_time_zone_is_refused(api: Api) -> None:
    response = api.client.put(
        f"/v1/projects/{api.project}/policy", json={"time_zone": "Mars/Olympus"}, headers=api.admin
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].endswith("time_zone")
