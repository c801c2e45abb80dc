"""The working day's rules (issue 13) firing on their own in a running `yingke serve`,
with policy durations of seconds: 待激活, escalation per grade, negotiation escalation,
the recent-visit rule and the loss review comment, each seen over HTTP, once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.http.test_deadlines_e2e import ADMIN_KEY, principal, server, types_of

pytestmark = pytest.mark.slow

__all__ = ["server"]  # the fixture: a `yingke serve` subprocess on a fresh data dir

PROJECT = "e2e-day"
PHONES = {"asleep": "13500001111", "deal": "13500002222", "lost": "13500003333"}
UNITS_CSV = (
    "building,number,rooms,area,floor,orientation,list_price\n3栋,1201,3,89.50,12,south,2100000\n"
)


def eventually(what: str, check: Callable[[], Any], seconds: float = 120) -> Any:
    """Poll ``check`` until it returns something truthy (real time passes in a server)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen within {seconds} s")


def deadline_runs(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith('yingke_loop_runs_total{loop="deadlines"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_each_working_day_rule_fires_once_in_a_running_server(server: str) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server, headers=admin, timeout=10) as http:
        consultant = principal(
            http, {"id": "c-day", "role": "consultant", "project_ids": [PROJECT]}
        )
        manager = principal(http, {"id": "m-day", "role": "manager", "project_ids": [PROJECT]})
        supervisor = principal(
            http, {"id": "s-day", "role": "supervisor", "project_ids": [PROJECT]}
        )
        agent = principal(http, {"id": "a-day", "role": "channel_agent", "partner_id": "p-day"})
        policy = http.put(
            f"/v1/projects/{PROJECT}/policy",
            json={
                "first_follow_up": "PT1S",
                "escalate_after": {"A": "PT1S"},
                "dormant_after": "PT3S",
                "negotiation_escalation": "PT2S",
                "recent_visit_window": "P1D",
            },
            headers=manager,
        )
        assert policy.status_code == 200, policy.text
        assert policy.json()["escalate_after"] == {"A": "PT1S", "B": "P1D", "C": "P1D"}
        assert policy.json()["loss_review_comment_required"] is True

        def visit(phone: str) -> str:
            body = {
                "project_id": PROJECT,
                "phone": phone,
                "client_name": "林晓",
                "consultant_id": "c-day",
            }
            response = http.post("/v1/visits", json=body, headers=consultant)
            assert response.status_code == 201, response.text
            client_id: str = response.json()["client_id"]
            return client_id

        def rule_tasks(headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
            response = http.get("/v1/rule-tasks", params=params, headers=headers)
            assert response.status_code == 200, response.text
            items: list[dict[str, Any]] = response.json()["items"]
            return items

        # An A buyer nobody calls: first follow-up due after 1 s, escalated 1 s later,
        # dormant (待激活) after 3 s without contact
        asleep = visit(PHONES["asleep"])
        graded = http.post(
            f"/v1/clients/{asleep}/grade", json={"grade": "A", "reason": "很急"}, headers=consultant
        )
        assert graded.status_code == 200, graded.text

        # A buyer with a deal: deposit paid, no contract; escalated to the manager after 2 s
        buyer = visit(PHONES["deal"])
        imported = http.post(
            f"/v1/projects/{PROJECT}/units:import",
            content=UNITS_CSV.encode(),
            headers={**admin, "Content-Type": "text/csv"},
        )
        assert imported.status_code == 200, imported.text
        unit_id = imported.json()["units"][0]["unit_id"]
        opened = http.post(
            "/v1/deals", json={"client_id": buyer, "unit_id": unit_id}, headers=consultant
        )
        assert opened.status_code == 201, opened.text
        deal_id = opened.json()["deal_id"]
        deposit = http.post(
            f"/v1/deals/{deal_id}/deposit",
            json={
                "amount_fen": 5_000_000,
                "method": "cash",
                "signing_deadline": "2199-01-01T00:00:00+08:00",
            },
            headers=consultant,
        )
        assert deposit.status_code == 200, deposit.text

        # Then, with nobody calling anything, each rule fires on its own
        escalated = eventually(
            "the follow-up escalation",
            lambda: rule_tasks(supervisor, kind="follow_up_escalated"),
        )
        assert [(t["client_id"], t["grade"], t["assignee_role"]) for t in escalated] == [
            (asleep, "A", "supervisor")
        ]
        woken = eventually("the wake-up task", lambda: rule_tasks(consultant, kind="wake_up"))
        assert [(t["client_id"], t["consultant_id"]) for t in woken] == [(asleep, "c-day")]
        negotiation = eventually(
            "the negotiation escalation",
            lambda: rule_tasks(manager, kind="negotiation_escalated"),
        )
        assert [(t["deal_id"], t["client_id"]) for t in negotiation] == [(deal_id, buyer)]

        # The follow-up task list shows both flags to the owner
        tasks = http.get("/v1/tasks", headers=consultant).json()["items"]
        flags = {t["client_id"]: (t["escalated"], t["dormant"]) for t in tasks}
        assert flags[asleep] == (True, True)
        assert flags[buyer] == (False, False)  # in a deal: in touch enough, not dormant

        # The loss review needs its comment (审核意见)
        lost = visit(PHONES["lost"])
        asked = http.post(
            f"/v1/clients/{lost}/loss-requests", json={"reason": "price"}, headers=consultant
        )
        assert asked.status_code == 201, asked.text
        decide = f"/v1/clients/{lost}/loss-requests/{asked.json()['request_id']}/approve"
        empty = http.post(decide, json={"comment": ""}, headers=supervisor)
        assert empty.status_code == 422, empty.text
        assert [e["field"] for e in empty.json()["errors"]] == ["comment"]
        approved = http.post(decide, json={"comment": "价格谈不拢，同意"}, headers=supervisor)
        assert approved.status_code == 200, approved.text

        # A channel reporting the buyer who was at the office today is turned away
        report = http.post(
            "/v1/reports",
            json={
                "project_id": PROJECT,
                "partner_id": "p-day",
                "agent_id": "a-day",
                "client_name": "林晓",
                "phone": PHONES["lost"],
            },
            headers=agent,
        )
        assert report.status_code == 201, report.text
        assert (report.json()["status"], report.json()["reason"]) == ("rejected", "recent_visit")
        assert "c-day" not in report.text and "s-day" not in report.text

        # However often the processor ran meanwhile, each rule fired once: let it sweep
        # five more times (its loop counts them in /metrics), then count the events.
        swept = deadline_runs(http) + 5
        eventually("five more deadline sweeps", lambda: deadline_runs(http) >= swept)
        history = types_of(http, asleep)
        assert history.count("FollowUpEscalated") == 1
        assert history.count("ClientWentDormant") == 1
        deal_events = http.get(f"/v1/clients/{buyer}/history").json()["events"]
        assert "ClientWentDormant" not in [e["type"] for e in deal_events]
        assert len(rule_tasks(manager, kind="negotiation_escalated")) == 1
        metrics = http.get("/metrics").text
        for kind in ("dormant", "follow_up_escalated", "negotiation_escalated"):
            assert f'yingke_deadlines_fired_total{{kind="{kind}"}} 1.0' in metrics, kind
