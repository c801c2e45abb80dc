"""After the visit, over HTTP: who may do what, the pool, departures, disputes, and the
evidence chain (history and ownership as of an instant) that shows every step."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from domain.values import Actor
from tests.http.conftest import Api
from tests.support import ctx, unique

Headers = dict[str, str]


def staff(api: Api, role: str = "consultant") -> tuple[str, Headers]:
    return api.principal(role, project_ids=[api.project])


def agent(api: Api, partner: str) -> tuple[str, Headers]:
    return api.principal("channel_agent", partner_id=partner)


def visit(api: Api, consultant_id: str, headers: Headers, phone: str = "13812345678") -> str:
    response = api.client.post(
        "/v1/visits",
        json={
            "project_id": api.project,
            "phone": phone,
            "client_name": "李雷",
            "consultant_id": consultant_id,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def report(api: Api, partner: str, agent_id: str, headers: Headers, phone: str) -> Any:
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
    assert response.status_code == 201, response.text
    return response.json()


def follow_up(api: Api, client_id: str, headers: Headers, effective: bool = True) -> Any:
    return api.client.post(
        f"/v1/clients/{client_id}/follow-ups",
        json={"method": "call", "summary": "聊了首付", "effective": effective},
        headers=headers,
    )


def set_policy(api: Api, **settings: Any) -> None:
    response = api.client.put(
        f"/v1/projects/{api.project}/policy", json=settings, headers=api.admin
    )
    assert response.status_code == 200, response.text


def lose(api: Api, client_id: str, owner: Headers, reviewer: Headers) -> None:
    """Put the buyer in the pool: a loss request, approved."""
    asked = api.client.post(
        f"/v1/clients/{client_id}/loss-requests", json={"reason": "price"}, headers=owner
    )
    assert asked.status_code == 201, asked.text
    approved = api.client.post(
        f"/v1/clients/{client_id}/loss-requests/{asked.json()['request_id']}/approve",
        json={"comment": "确认战败"},
        headers=reviewer,
    )
    assert approved.status_code == 200, approved.text


def history(api: Api, client_id: str, headers: Headers | None = None) -> list[dict[str, Any]]:
    response = api.client.get(f"/v1/clients/{client_id}/history", headers=headers or api.admin)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def owner_at(api: Api, client_id: str, moment: datetime | None = None) -> dict[str, Any]:
    params = {"at": (moment or api.clock.now).isoformat()}
    response = api.client.get(
        f"/v1/clients/{client_id}/ownership", params=params, headers=api.admin
    )
    assert response.status_code == 200, response.text
    owner: dict[str, Any] = response.json()["owner"]
    return owner


def problem_code(response: Any) -> str:
    code: str = response.json()["code"]
    return code


# ----------------------------------------------------------------- follow-ups


def test_a_consultant_follows_up_own_buyers_only(api: Api) -> None:
    mine_id, mine = staff(api)
    _, other = staff(api)
    client_id = visit(api, mine_id, mine)

    ok = follow_up(api, client_id, mine)
    refused = follow_up(api, client_id, other)

    assert ok.status_code == 201, ok.text
    assert ok.json()["owner"]["consultant_id"] == mine_id
    assert ok.json()["next_follow_up_due"] is not None
    # Another consultant's buyer answers like a missing one (api/authorization.py).
    assert refused.status_code == 404 and problem_code(refused) == "not_found"
    assert [e["type"] for e in history(api, client_id)].count("FollowUpLogged") == 1


def test_a_supervisor_follows_up_grades_and_profiles_for_the_owner(api: Api) -> None:
    owner_id, owner = staff(api)
    _, supervisor = staff(api, "supervisor")
    client_id = visit(api, owner_id, owner)

    logged = follow_up(api, client_id, supervisor)
    graded = api.client.post(
        f"/v1/clients/{client_id}/grade",
        json={"grade": "A", "reason": "wants to sign this month"},
        headers=supervisor,
    )
    profiled = api.client.put(
        f"/v1/clients/{client_id}/profile",
        json={
            "budget_min": 3_000_000,
            "budget_max": 4_500_000,
            "districts": ["浦东"],
            "layouts": [3],
            "purpose": "self_use",
            "focus": ["school", "transport"],
        },
        headers=supervisor,
    )

    assert logged.status_code == 201
    assert graded.status_code == 200 and graded.json()["grade"] == "A"
    assert profiled.status_code == 200, profiled.text
    assert profiled.json()["profile"]["focus"] == ["school", "transport"]
    types = [e["type"] for e in history(api, client_id)]
    assert {"FollowUpLogged", "GradeChanged", "ProfileUpdated"} <= set(types)


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        ({"budget_min": 5_000_000, "budget_max": 1_000_000}, "budget"),
        ({"layouts": [0]}, "layouts"),
        ({"focus": ["feng_shui"]}, "focus"),
        ({"purpose": "speculation"}, "purpose"),
    ],
)
def test_a_bad_profile_is_refused_with_422(api: Api, profile: dict[str, Any], field: str) -> None:
    owner_id, owner = staff(api)
    client_id = visit(api, owner_id, owner)

    response = api.client.put(f"/v1/clients/{client_id}/profile", json=profile, headers=owner)

    assert response.status_code == 422
    assert field in str(response.json()["errors"])


# --------------------------------------------------------------------- losses


def test_a_supervisor_approves_a_loss_and_a_consultant_cannot(api: Api) -> None:
    owner_id, owner = staff(api)
    _, supervisor = staff(api, "supervisor")
    client_id = visit(api, owner_id, owner)
    asked = api.client.post(
        f"/v1/clients/{client_id}/loss-requests",
        json={"reason": "bought_elsewhere", "note": "买了隔壁盘"},
        headers=owner,
    )
    assert asked.status_code == 201 and asked.json()["status"] == "pending"
    path = f"/v1/clients/{client_id}/loss-requests/{asked.json()['request_id']}"

    by_owner = api.client.post(f"{path}/approve", json={}, headers=owner)
    by_supervisor = api.client.post(f"{path}/approve", json={"comment": "ok"}, headers=supervisor)
    again = api.client.post(f"{path}/reject", json={}, headers=supervisor)

    assert by_owner.status_code == 403
    assert by_supervisor.status_code == 200
    assert by_supervisor.json()["status"] == "approved"
    assert by_supervisor.json()["client_status"] == "pool"
    assert again.status_code == 409 and problem_code(again) == "decided"
    assert owner_at(api, client_id)["status"] == "pool"


def test_a_rejected_loss_keeps_the_owner_and_one_request_waits_at_a_time(api: Api) -> None:
    owner_id, owner = staff(api)
    _, manager = staff(api, "manager")
    client_id = visit(api, owner_id, owner)
    path = f"/v1/clients/{client_id}/loss-requests"
    first = api.client.post(path, json={"reason": "unreachable"}, headers=owner)
    second = api.client.post(path, json={"reason": "price"}, headers=owner)
    bad = api.client.post(path, json={"reason": "bad_luck"}, headers=owner)

    rejected = api.client.post(
        f"{path}/{first.json()['request_id']}/reject", json={"comment": "再打"}, headers=manager
    )

    assert second.status_code == 409 and problem_code(second) == "loss_pending"
    assert bad.status_code == 422
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert owner_at(api, client_id)["consultant_id"] == owner_id


# ------------------------------------------------------------------ transfers


def test_only_a_manager_transfers_a_buyer(api: Api) -> None:
    owner_id, owner = staff(api)
    successor_id, _ = staff(api)
    _, supervisor = staff(api, "supervisor")
    _, manager = staff(api, "manager")
    client_id = visit(api, owner_id, owner)
    path = f"/v1/clients/{client_id}/transfers"
    body = {"to_consultant_id": successor_id, "reason": "调岗"}

    by_owner = api.client.post(path, json=body, headers=owner)
    by_supervisor = api.client.post(path, json=body, headers=supervisor)
    to_nobody = api.client.post(
        path, json={"to_consultant_id": "nobody", "reason": "?"}, headers=manager
    )
    by_manager = api.client.post(path, json=body, headers=manager)

    assert (by_owner.status_code, by_supervisor.status_code) == (403, 403)
    assert to_nobody.status_code == 422
    assert by_manager.status_code == 200, by_manager.text
    assert by_manager.json()["owner"]["consultant_id"] == successor_id
    assert by_manager.json()["owner"]["basis"] == "transfer"


def test_staff_of_another_project_do_not_reach_the_buyer(api: Api) -> None:
    owner_id, owner = staff(api)
    _, stranger = api.principal("manager", project_ids=["another-project"])
    client_id = visit(api, owner_id, owner)

    response = api.client.post(
        f"/v1/clients/{client_id}/transfers",
        json={"to_consultant_id": owner_id, "reason": "x"},
        headers=stranger,
    )

    assert response.status_code == 404


# ----------------------------------------------------------------------- pool


def test_a_claim_on_a_buyer_not_in_the_pool_is_409_not_in_pool(api: Api) -> None:
    owner_id, owner = staff(api)
    _, other = staff(api)
    client_id = visit(api, owner_id, owner)

    response = api.client.post(f"/v1/clients/{client_id}/claims", json={}, headers=owner)
    by_other = api.client.post(f"/v1/clients/{client_id}/claims", json={}, headers=other)

    assert response.status_code == 409 and problem_code(response) == "not_in_pool"
    # Someone else's buyer is not in the pool: for another consultant it does not exist.
    assert by_other.status_code == 404 and problem_code(by_other) == "not_found"


def test_claims_over_the_monthly_cap_are_409_claim_cap_reached(api: Api) -> None:
    set_policy(api, pool_claims_per_month=1)
    owner_id, owner = staff(api)
    _, supervisor = staff(api, "supervisor")
    claimant_id, claimant = staff(api)
    clients = [visit(api, owner_id, owner, f"1381234567{i}") for i in range(2)]
    for client_id in clients:
        lose(api, client_id, owner, supervisor)

    first = api.client.post(f"/v1/clients/{clients[0]}/claims", json={}, headers=claimant)
    second = api.client.post(f"/v1/clients/{clients[1]}/claims", json={}, headers=claimant)

    assert first.status_code == 201, first.text
    assert first.json()["owner"]["consultant_id"] == claimant_id
    assert first.json()["claims_used"] == 1
    assert second.status_code == 409 and problem_code(second) == "claim_cap_reached"
    assert owner_at(api, clients[1])["status"] == "pool"


def test_who_may_claim(api: Api) -> None:
    owner_id, owner = staff(api)
    _, supervisor = staff(api, "supervisor")
    other_id, _ = staff(api)
    claimant_id, claimant = staff(api)
    _, auditor = api.principal("auditor")
    client_id = visit(api, owner_id, owner)
    lose(api, client_id, owner, supervisor)
    path = f"/v1/clients/{client_id}/claims"

    for_someone_else = api.client.post(path, json={"consultant_id": other_id}, headers=claimant)
    by_auditor = api.client.post(path, json={"consultant_id": other_id}, headers=auditor)
    for_a_consultant = api.client.post(
        path, json={"consultant_id": claimant_id}, headers=supervisor
    )

    assert for_someone_else.status_code == 403
    assert by_auditor.status_code == 403
    assert for_a_consultant.status_code == 201
    assert owner_at(api, client_id)["consultant_id"] == claimant_id


def test_with_approval_on_a_claim_waits_for_a_supervisor(api: Api) -> None:
    set_policy(api, pool_claim_approval=True)
    owner_id, owner = staff(api)
    _, supervisor = staff(api, "supervisor")
    claimant_id, claimant = staff(api)
    _, rival = staff(api)
    client_id = visit(api, owner_id, owner)
    lose(api, client_id, owner, supervisor)

    pending = api.client.post(f"/v1/clients/{client_id}/claims", json={}, headers=claimant)
    assert pending.status_code == 201, pending.text
    claim_id = pending.json()["claim_id"]
    assert owner_at(api, client_id)["status"] == "pool"
    blocked = api.client.post(f"/v1/clients/{client_id}/claims", json={}, headers=rival)
    assert blocked.status_code == 409 and problem_code(blocked) == "claim_pending"

    path = f"/v1/clients/{client_id}/claims/{claim_id}"
    self_approved = api.client.post(f"{path}/approve", json={}, headers=claimant)
    approved = api.client.post(f"{path}/approve", json={"comment": "go"}, headers=supervisor)

    assert self_approved.status_code == 403
    assert approved.status_code == 200, approved.text
    assert approved.json()["owner"]["consultant_id"] == claimant_id
    claimed = [e for e in history(api, client_id) if e["type"] == "ClaimedFromPool"]
    assert len(claimed) == 1 and claimed[0]["data"]["approved_by"] is not None
    types = [e["type"] for e in history(api, client_id)]
    assert types.index("ClaimRequested") < types.index("ClaimedFromPool")


def teamed(api: Api, role: str, team: str) -> tuple[str, Headers]:
    pid = unique(role)
    created = api.client.post(
        "/v1/principals",
        json={"id": pid, "role": role, "project_ids": [api.project], "team_id": team},
        headers=api.admin,
    )
    assert created.status_code == 201, created.text
    return pid, api.auth(created.json()["key"])


def test_a_supervisor_decides_and_files_claims_for_their_own_team_only(api: Api) -> None:
    # The attack: a buyer in the pool is every team's, so the supervisor of team T1 could
    # approve or refuse a T2 consultant's claim, and claim pool buyers for T2's people.
    set_policy(api, pool_claim_approval=True)
    owner_id, owner = teamed(api, "consultant", "t1")
    _, t1_supervisor = teamed(api, "supervisor", "t1")
    t2_id, t2_consultant = teamed(api, "consultant", "t2")
    _, t2_supervisor = teamed(api, "supervisor", "t2")
    first, second = (visit(api, owner_id, owner, f"1381234561{i}") for i in range(2))
    for client_id in (first, second):
        lose(api, client_id, owner, t1_supervisor)

    pending = api.client.post(f"/v1/clients/{first}/claims", json={}, headers=t2_consultant)
    assert pending.status_code == 201, pending.text
    path = f"/v1/clients/{first}/claims/{pending.json()['claim_id']}"
    missing = f"/v1/clients/{uuid.uuid4()}/claims/{pending.json()['claim_id']}"
    for decision in ("approve", "reject"):
        foreign = api.client.post(
            f"{path}/{decision}", json={"comment": "x"}, headers=t1_supervisor
        )
        absent = api.client.post(
            f"{missing}/{decision}", json={"comment": "x"}, headers=t1_supervisor
        )
        assert foreign.status_code == 404, foreign.text
        assert foreign.json() | {"instance": None, "request_id": None} == (
            absent.json() | {"instance": None, "request_id": None}
        )
    assert owner_at(api, first)["status"] == "pool"
    approved = api.client.post(f"{path}/approve", json={"comment": "go"}, headers=t2_supervisor)
    assert approved.status_code == 200, approved.text
    assert approved.json()["owner"]["consultant_id"] == t2_id

    for_another_team = api.client.post(
        f"/v1/clients/{second}/claims", json={"consultant_id": t2_id}, headers=t1_supervisor
    )
    for_own_team = api.client.post(
        f"/v1/clients/{second}/claims", json={"consultant_id": owner_id}, headers=t1_supervisor
    )
    assert for_another_team.status_code == 403, for_another_team.text
    assert for_own_team.status_code == 201, for_own_team.text


def test_a_supervisor_files_disputes_for_their_own_team_only(api: Api) -> None:
    # The attack: T1's supervisor opened a dispute in the name of a T2 consultant, which
    # also barred that consultant from opening their own (one open dispute per claimant).
    owner_id, owner = teamed(api, "consultant", "t1")
    _, t1_supervisor = teamed(api, "supervisor", "t1")
    t2_id, t2_consultant = teamed(api, "consultant", "t2")
    _, t2_supervisor = teamed(api, "supervisor", "t2")
    client_id = visit(api, owner_id, owner)
    path = f"/v1/clients/{client_id}/disputes"
    claim = {"claimant_id": t2_id, "reason": "我先接待的", "evidence_versions": [1]}

    foreign = api.client.post(path, json=claim, headers=t1_supervisor)
    assert foreign.status_code == 403, foreign.text
    own = api.client.post(path, json=claim, headers=t2_consultant)
    assert own.status_code == 201, own.text
    again = api.client.post(path, json=claim, headers=t2_supervisor)
    assert again.status_code == 409 and problem_code(again) == "dispute_open"


def test_a_refused_claim_gives_the_allowance_back(api: Api) -> None:
    set_policy(api, pool_claim_approval=True, pool_claims_per_month=1)
    owner_id, owner = staff(api)
    _, supervisor = staff(api, "supervisor")
    _, claimant = staff(api)
    clients = [visit(api, owner_id, owner, f"1381234560{i}") for i in range(2)]
    for client_id in clients:
        lose(api, client_id, owner, supervisor)
    pending = api.client.post(f"/v1/clients/{clients[0]}/claims", json={}, headers=claimant)
    over_cap = api.client.post(f"/v1/clients/{clients[1]}/claims", json={}, headers=claimant)
    assert over_cap.status_code == 409 and problem_code(over_cap) == "claim_cap_reached"

    refused = api.client.post(
        f"/v1/clients/{clients[0]}/claims/{pending.json()['claim_id']}/reject",
        json={"comment": "手上客户太多"},
        headers=supervisor,
    )
    retried = api.client.post(f"/v1/clients/{clients[1]}/claims", json={}, headers=claimant)

    assert refused.status_code == 200
    assert retried.status_code == 201, retried.text


def test_the_claim_response_says_pending_or_claimed(api: Api) -> None:
    set_policy(api, pool_claim_approval=True)
    owner_id, owner = staff(api)
    _, supervisor = staff(api, "supervisor")
    _, claimant = staff(api)
    client_id = visit(api, owner_id, owner)
    lose(api, client_id, owner, supervisor)

    pending = api.client.post(f"/v1/clients/{client_id}/claims", json={}, headers=claimant)
    approved = api.client.post(
        f"/v1/clients/{client_id}/claims/{pending.json()['claim_id']}/approve",
        json={},
        headers=supervisor,
    )

    assert pending.json()["status"] == "pending"
    assert approved.json()["status"] == "approved"


# ----------------------------------------------------------------- departure


def test_a_departure_revokes_the_key_at_once_and_moves_every_buyer(api: Api) -> None:
    leaver_id, leaver = staff(api)
    successor_id, _ = staff(api)
    _, manager = staff(api, "manager")
    clients = [visit(api, leaver_id, leaver, f"1391234500{i}") for i in range(3)]
    path = f"/v1/consultants/{leaver_id}/departure"
    for pid, name in ((leaver_id, "王晓"), (successor_id, "李娜")):
        named = {"display_name": name}
        assert api.client.patch(f"/v1/principals/{pid}", json=named, headers=api.admin).is_success

    by_leaver = api.client.post(path, json={"to_pool": True}, headers=leaver)
    both = api.client.post(
        path, json={"successor_id": successor_id, "to_pool": True}, headers=manager
    )
    departed = api.client.post(path, json={"successor_id": successor_id}, headers=manager)

    assert by_leaver.status_code == 403
    assert both.status_code == 422
    assert departed.status_code == 200, departed.text
    assert departed.json()["status"] == "completed"
    assert (departed.json()["moved"], departed.json()["remaining"]) == (3, 0)
    # The manager reads people, not ids (the directory keeps a leaver's name)
    status = api.client.get(path, params={"after": api.container.position()}, headers=manager)
    names = (status.json()["consultant_name"], status.json()["successor_name"])
    assert names == ("王晓", "李娜"), status.text
    assert follow_up(api, clients[0], leaver).status_code == 401
    for client_id in clients:
        owner = owner_at(api, client_id)
        assert (owner["consultant_id"], owner["basis"]) == (successor_id, "departure")

    # Repeating the call is safe; another successor is refused
    again = api.client.post(path, json={"successor_id": successor_id}, headers=manager)
    assert again.status_code == 200 and again.json()["moved"] == 3
    other = api.client.post(path, json={"to_pool": True}, headers=manager)
    assert other.status_code == 409 and problem_code(other) == "departure_differs"
    for client_id in clients:
        moves = [e for e in history(api, client_id) if e["type"] == "OwnershipTransferred"]
        assert len(moves) == 1


def test_an_interrupted_departure_to_the_pool_resumes_on_repeat(api: Api) -> None:
    leaver_id, leaver = staff(api)
    _, manager = staff(api, "manager")
    clients = [visit(api, leaver_id, leaver, f"1391234510{i}") for i in range(3)]
    # The first run stopped right after revoking the key, before moving anyone
    api.container.departures.start_departure(ctx(Actor("mgr-x", "manager")), leaver_id, None)
    assert follow_up(api, clients[0], leaver).status_code == 401

    resumed = api.client.post(
        f"/v1/consultants/{leaver_id}/departure", json={"to_pool": True}, headers=manager
    )

    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "completed" and resumed.json()["remaining"] == 0
    for client_id in clients:
        assert owner_at(api, client_id)["status"] == "pool"
        released = [e for e in history(api, client_id) if e["type"] == "ReleasedToPool"]
        assert len(released) == 1 and released[0]["data"]["reason"] == "departure"
    status = api.client.get(f"/v1/consultants/{leaver_id}/departure", headers=manager)
    assert status.status_code == 200 and status.json()["to_pool"] is True


# ------------------------------------------------------------------ disputes


def test_a_consultant_dispute_from_opening_to_a_final_ruling(api: Api) -> None:
    owner_id, owner = staff(api)
    claimant_id, claimant = staff(api)
    outsider_id, outsider = staff(api)
    _, supervisor = staff(api, "supervisor")
    _, manager = staff(api, "manager")
    client_id = visit(api, owner_id, owner)

    for_another = api.client.post(
        f"/v1/clients/{client_id}/disputes",
        json={"claimant_id": outsider_id, "reason": "x"},
        headers=claimant,
    )
    bad_evidence = api.client.post(
        f"/v1/clients/{client_id}/disputes",
        json={"claimant_id": claimant_id, "reason": "x", "evidence_versions": [999]},
        headers=claimant,
    )
    opened = api.client.post(
        f"/v1/clients/{client_id}/disputes",
        json={"claimant_id": claimant_id, "reason": "我先接待的", "evidence_versions": [1]},
        headers=claimant,
    )
    assert for_another.status_code == 403
    assert bad_evidence.status_code == 422
    assert opened.status_code == 201, opened.text
    dispute = f"/v1/disputes/{opened.json()['dispute_id']}"
    assert api.client.get(dispute, headers=owner).json()["status"] == "open"

    ruling = {"outcome": "upheld", "reason": "接待记录", "evidence_versions": [1, 2]}
    assert api.client.post(f"{dispute}/ruling", json=ruling, headers=supervisor).status_code == 403
    upheld = api.client.post(f"{dispute}/ruling", json=ruling, headers=manager)
    assert upheld.status_code == 200, upheld.text
    assert upheld.json()["owner"]["consultant_id"] == claimant_id
    assert upheld.json()["owner"]["basis"] == "ruling"

    by_outsider = api.client.post(f"{dispute}/appeal", json={"reason": "?"}, headers=outsider)
    appealed = api.client.post(f"{dispute}/appeal", json={"reason": "不服"}, headers=owner)
    assert by_outsider.status_code == 404  # not a party: the dispute does not exist for them
    assert appealed.status_code == 200 and appealed.json()["status"] == "appealed"

    final = api.client.post(
        f"{dispute}/ruling",
        json={"outcome": "dismissed", "reason": "复核", "evidence_versions": [2]},
        headers=manager,
    )
    assert final.status_code == 200
    assert final.json()["status"] == "final"
    assert final.json()["owner"]["consultant_id"] == owner_id
    second = api.client.post(f"{dispute}/appeal", json={"reason": "再来"}, headers=owner)
    assert second.status_code == 409 and problem_code(second) == "not_appealable"
    rulings = [e for e in history(api, client_id) if e["type"] == "DisputeRuled"]
    assert [r["data"]["outcome"] for r in rulings] == ["upheld", "dismissed"]
    assert rulings[0]["data"]["evidence_versions"] == [1, 2]


def test_a_channel_disputes_only_through_its_own_report_and_cannot_rule(api: Api) -> None:
    # Given partner-a reported the buyer first, partner-b's later report was rejected
    a_id, a = agent(api, "partner-a")
    b_id, b = agent(api, "partner-b")
    _, c = agent(api, "partner-c")
    owner_id, owner = staff(api)
    _, manager = staff(api, "manager")
    phone = "13812340000"
    report(api, "partner-a", a_id, a, phone)
    late = report(api, "partner-b", b_id, b, phone)
    assert late["status"] == "rejected"
    client_id = visit(api, owner_id, owner, phone)
    path = f"/v1/clients/{client_id}/disputes"
    claim = {"reason": "我们更早带看", "report_id": late["report_id"]}

    for_another_partner = api.client.post(
        path, json={**claim, "claimant_id": "partner-a"}, headers=b
    )
    with_someone_elses_report = api.client.post(
        path, json={**claim, "claimant_id": "partner-c"}, headers=c
    )
    opened = api.client.post(path, json={**claim, "claimant_id": "partner-b"}, headers=b)

    assert for_another_partner.status_code == 403
    # partner-c reported nothing of this buyer: for it the buyer does not exist.
    assert with_someone_elses_report.status_code == 404
    assert opened.status_code == 201, opened.text
    dispute = f"/v1/disputes/{opened.json()['dispute_id']}"
    assert api.client.get(dispute, headers=b).status_code == 200
    assert api.client.get(dispute, headers=c).status_code == 404
    ruling = {"outcome": "upheld", "reason": "带看记录", "evidence_versions": [4]}
    assert api.client.post(f"{dispute}/ruling", json=ruling, headers=b).status_code == 403

    upheld = api.client.post(f"{dispute}/ruling", json=ruling, headers=manager)
    assert upheld.status_code == 200, upheld.text
    owner = upheld.json()["owner"]
    assert (owner["consultant_id"], owner["partner_id"]) == (owner_id, "partner-b")
    assert owner["report_id"] == late["report_id"]


# ------------------------------------------------------------------- auditor


def test_an_auditor_reads_the_evidence_but_cannot_act(api: Api) -> None:
    owner_id, owner = staff(api)
    _, auditor = api.principal("auditor")
    client_id = visit(api, owner_id, owner)
    asked = api.client.post(
        f"/v1/clients/{client_id}/loss-requests", json={"reason": "price"}, headers=owner
    )
    opened = api.client.post(
        f"/v1/clients/{client_id}/disputes",
        json={"claimant_id": owner_id, "reason": "for the record"},
        headers=owner,
    )

    assert history(api, client_id, auditor)[-1]["type"] == "DisputeOpened"
    reads = [
        f"/v1/clients/{client_id}/ownership",
        f"/v1/clients/{client_id}",
        f"/v1/disputes/{opened.json()['dispute_id']}",
    ]
    for path in reads:
        assert api.client.get(path, headers=auditor).status_code == 200, path
    acts = [
        (
            f"/v1/clients/{client_id}/follow-ups",
            {"method": "call", "summary": "x", "effective": True},
        ),
        (f"/v1/clients/{client_id}/grade", {"grade": "A", "reason": "x"}),
        (f"/v1/clients/{client_id}/loss-requests/{asked.json()['request_id']}/approve", {}),
        (f"/v1/clients/{client_id}/transfers", {"to_consultant_id": owner_id, "reason": "x"}),
        (f"/v1/clients/{client_id}/disputes", {"claimant_id": owner_id, "reason": "x"}),
        (
            f"/v1/disputes/{opened.json()['dispute_id']}/ruling",
            {"outcome": "dismissed", "reason": "x", "evidence_versions": [1]},
        ),
        (f"/v1/consultants/{owner_id}/departure", {"to_pool": True}),
    ]
    for path, body in acts:
        response = api.client.post(path, json=body, headers=auditor)
        assert response.status_code == 403, (path, response.text)
    assert owner_at(api, client_id)["consultant_id"] == owner_id


# --------------------------------------------------------- history and as-of


def test_history_and_as_of_show_the_whole_life_of_a_buyer(api: Api) -> None:
    # Short protection so that an early effective follow-up extends it
    set_policy(api, protection="P2D", protection_extension="P3D", protection_max="P10D")
    owner_id, owner = staff(api)
    claimant_id, claimant = staff(api)
    successor_id, _ = staff(api)
    _, supervisor = staff(api, "supervisor")
    _, manager = staff(api, "manager")
    client_id = visit(api, owner_id, owner)

    api.clock.advance(hours=1)
    extended = follow_up(api, client_id, owner)
    assert extended.status_code == 201
    api.clock.advance(hours=1)
    owned_moment = api.clock.now
    api.clock.advance(hours=1)
    lose(api, client_id, owner, supervisor)
    api.clock.advance(hours=1)
    pool_moment = api.clock.now
    api.clock.advance(hours=1)
    claimed = api.client.post(f"/v1/clients/{client_id}/claims", json={}, headers=claimant)
    assert claimed.status_code == 201, claimed.text
    api.clock.advance(hours=1)
    claimed_moment = api.clock.now
    api.clock.advance(hours=1)
    moved = api.client.post(
        f"/v1/clients/{client_id}/transfers",
        json={"to_consultant_id": successor_id, "reason": "调岗"},
        headers=manager,
    )
    assert moved.status_code == 200
    api.clock.advance(hours=1)
    opened = api.client.post(
        f"/v1/clients/{client_id}/disputes",
        json={"claimant_id": claimant_id, "reason": "我捞的客"},
        headers=claimant,
    )
    api.client.post(
        f"/v1/disputes/{opened.json()['dispute_id']}/ruling",
        json={"outcome": "upheld", "reason": "捞客在先", "evidence_versions": [1]},
        headers=manager,
    )

    # The buyer is the claimant's now; the earlier owner no longer reads them.
    assert api.client.get(f"/v1/clients/{client_id}/history", headers=owner).status_code == 404
    events = history(api, client_id, claimant)
    types = [e["type"] for e in events]
    for kind in (
        "FollowUpLogged",
        "ProtectionExtended",
        "LossRequested",
        "LossApproved",
        "ReleasedToPool",
        "ClaimedFromPool",
        "OwnershipTransferred",
        "DisputeOpened",
        "DisputeRuled",
        "ScheduleUpdated",
    ):
        assert kind in types, kind
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    extension = events[types.index("ProtectionExtended")]["data"]
    assert extension["trigger"] == "follow_up"
    assert "聊了首付" not in str(events)  # follow-up summaries are sealed, never shown

    before = owner_at(api, client_id, owned_moment)
    assert (before["status"], before["consultant_id"]) == ("owned", owner_id)
    assert datetime.fromisoformat(before["protected_until"]) == datetime.fromisoformat(
        extension["protected_until"]
    )
    assert datetime.fromisoformat(extension["protected_until"]) == owned_moment + timedelta(
        days=3, hours=-1
    )
    in_pool = owner_at(api, client_id, pool_moment)
    assert (in_pool["status"], in_pool["basis"]) == ("pool", "lost")
    assert in_pool["consultant_id"] is None
    after = owner_at(api, client_id, claimed_moment)
    assert (after["consultant_id"], after["basis"]) == (claimant_id, "pool_claim")
    now = owner_at(api, client_id)
    assert (now["consultant_id"], now["basis"]) == (claimant_id, "ruling")


# ------------------------------------------------- ownership and departed staff


def test_a_ruling_never_hands_a_buyer_to_a_consultant_who_has_left(api: Api) -> None:
    owner_id, owner = staff(api)
    claimant_id, claimant = staff(api)
    successor_id, _ = staff(api)
    _, manager = staff(api, "manager")
    client_id = visit(api, owner_id, owner)
    opened = api.client.post(
        f"/v1/clients/{client_id}/disputes",
        json={"claimant_id": claimant_id, "reason": "我先接待的"},
        headers=claimant,
    )
    assert opened.status_code == 201
    departed = api.client.post(
        f"/v1/consultants/{claimant_id}/departure",
        json={"successor_id": successor_id},
        headers=manager,
    )
    assert departed.status_code == 200 and departed.json()["status"] == "completed"

    ruled = api.client.post(
        f"/v1/disputes/{opened.json()['dispute_id']}/ruling",
        json={"outcome": "upheld", "reason": "接待记录", "evidence_versions": [1]},
        headers=manager,
    )

    assert ruled.status_code == 422
    assert owner_at(api, client_id)["consultant_id"] == owner_id


def test_an_approved_claim_never_goes_to_a_consultant_who_has_left(api: Api) -> None:
    set_policy(api, pool_claim_approval=True)
    owner_id, owner = staff(api)
    claimant_id, claimant = staff(api)
    _, supervisor = staff(api, "supervisor")
    _, manager = staff(api, "manager")
    client_id = visit(api, owner_id, owner)
    lose(api, client_id, owner, supervisor)
    pending = api.client.post(f"/v1/clients/{client_id}/claims", json={}, headers=claimant)
    assert pending.status_code == 201
    departed = api.client.post(
        f"/v1/consultants/{claimant_id}/departure", json={"to_pool": True}, headers=manager
    )
    assert departed.status_code == 200

    approved = api.client.post(
        f"/v1/clients/{client_id}/claims/{pending.json()['claim_id']}/approve",
        json={},
        headers=supervisor,
    )

    assert approved.status_code == 422
    assert owner_at(api, client_id)["status"] == "pool"


def test_a_reversed_ruling_never_restores_a_buyer_to_a_consultant_who_has_left(api: Api) -> None:
    # Given A's buyer awarded to B by an upheld ruling, and then A left the company
    owner_id, owner = staff(api)
    claimant_id, claimant = staff(api)
    successor_id, _ = staff(api)
    _, manager = staff(api, "manager")
    client_id = visit(api, owner_id, owner)
    opened = api.client.post(
        f"/v1/clients/{client_id}/disputes",
        json={"claimant_id": claimant_id, "reason": "我先接待的"},
        headers=claimant,
    )
    dispute = f"/v1/disputes/{opened.json()['dispute_id']}"
    ruling = {"outcome": "upheld", "reason": "接待记录", "evidence_versions": [1]}
    assert api.client.post(f"{dispute}/ruling", json=ruling, headers=manager).status_code == 200
    departed = api.client.post(
        f"/v1/consultants/{owner_id}/departure",
        json={"successor_id": successor_id},
        headers=manager,
    )
    assert departed.status_code == 200

    # When the manager takes the appeal and reverses the ruling
    appealed = api.client.post(f"{dispute}/appeal", json={"reason": "复核"}, headers=manager)
    assert appealed.status_code == 200
    api.client.post(
        f"{dispute}/ruling",
        json={"outcome": "dismissed", "reason": "复核", "evidence_versions": [1]},
        headers=manager,
    )

    # Then the buyer is not handed back to the departed consultant
    assert owner_at(api, client_id)["consultant_id"] != owner_id
