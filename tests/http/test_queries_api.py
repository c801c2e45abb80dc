"""The read side over HTTP: who sees what, cursor pagination, read-your-writes, lag.

One small office is set up through the API (a team of two consultants and one of
another team, a supervisor, two managers of two projects, two channels, an auditor);
the views follow in the background as in ``yingke serve``, and every query passes the
position of the last command (``?after=``) so that it reads its own writes.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import Api, make_api
from tests.support import wait_until
from yingke.bootstrap import all_views

P2 = "proj-second"
PHONES = {
    "a1": "13811110001",  # pa's report, visited with c1
    "a2": "13811110002",  # pa's report, visited with c2
    "a3": "13811110003",  # pa's report, never visited
    "b1": "13822220001",  # pb's report, visited with c3 (another team)
    "w1": "13833330001",  # walk-in (自然到访) at c1
    "a4": "13844440001",  # pa's report at the second project, visited with c4
}
VIEW_NAMES = sorted(v.name for v in all_views())
ELEVEN_DIGITS = re.compile(r"(?<!\d)1\d{10}(?!\d)")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """As tests/http/conftest.py (workers started as by ``yingke serve``), with a brisk
    follower."""
    yield from make_api(tmp_path, {"YINGKE_FOLLOW_INTERVAL": "0.05"})


@pytest.fixture
def impatient_api(tmp_path: Path) -> Iterator[Api]:
    """A short read-your-writes wait, for the tests whose views cannot catch up: they
    answer 503 whatever the wait, so it only bounds how long they take."""
    yield from make_api(tmp_path, {"YINGKE_FOLLOW_INTERVAL": "0.05", "YINGKE_READ_WAIT": "0.3"})


def views_reach(api: Api, position: int) -> None:
    """Wait on the follower itself rather than on the query's bounded wait."""
    wait_until(
        lambda: min(api.container.follower.positions().values()) >= position,
        timeout=60,
        message=lambda: f"the views to reach {position}: {api.container.follower.positions()}",
    )


def test_the_service_serves_the_read_side(tmp_path: Path) -> None:
    """With the default settings, as ``yingke serve`` builds it."""
    for api in make_api(tmp_path):
        for path in ("/v1/clients", "/v1/reports", "/v1/tasks", "/v1/views/status", "/metrics"):
            assert api.client.get(path, headers=api.admin).status_code == 200, path


@dataclass
class Office:
    api: Api
    keys: dict[str, dict[str, str]] = field(default_factory=dict)  # principal → headers
    clients: dict[str, str] = field(default_factory=dict)  # PHONES key → client id
    reports: dict[str, str] = field(default_factory=dict)  # report id → partner
    head: int = 0

    @property
    def p1(self) -> str:
        return self.api.project

    def command(self, path: str, body: dict[str, Any], as_: str | None = None) -> Any:
        headers = self.keys[as_] if as_ else self.api.admin
        response = self.api.client.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        self.head = max(self.head, int(response.headers["Yingke-Position"]))
        return response.json()

    def principal(self, pid: str, role: str, **extra: Any) -> None:
        body = self.command("/v1/principals", {"id": pid, "role": role, **extra})
        self.keys[pid] = self.api.auth(body["key"])

    def report(self, agent: str, partner: str, project: str, phone: str) -> dict[str, Any]:
        body: dict[str, Any] = self.command(
            "/v1/reports",
            {
                "project_id": project,
                "partner_id": partner,
                "agent_id": agent,
                "client_name": "张三丰",
                "phone": phone,
            },
            as_=agent,
        )
        self.reports[body["report_id"]] = partner
        return body

    def visit(self, consultant: str, project: str, key: str, partner: str | None = None) -> None:
        body = {
            "project_id": project,
            "phone": PHONES[key],
            "client_name": "张三丰",
            "consultant_id": consultant,
            "partner_id": partner,
        }
        self.clients[key] = self.command("/v1/visits", body, as_=consultant)["client_id"]

    def get(self, path: str, as_: str, **params: Any) -> httpx.Response:
        params.setdefault("after", self.head)
        response: httpx.Response = self.api.client.get(path, params=params, headers=self.keys[as_])
        return response

    def ok(self, path: str, as_: str, **params: Any) -> Any:
        response = self.get(path, as_, **params)
        assert response.status_code == 200, response.text
        assert_no_phone_numbers(response)
        return response.json()

    def client_ids(self, as_: str, **params: Any) -> set[str]:
        return {i["client_id"] for i in self.ok("/v1/clients", as_, **params)["items"]}

    def task_ids(self, as_: str, **params: Any) -> set[str]:
        return {i["client_id"] for i in self.ok("/v1/tasks", as_, **params)["items"]}

    def named(self, *keys: str) -> set[str]:
        return {self.clients[k] for k in keys}


def assert_no_phone_numbers(response: httpx.Response) -> None:
    """Never a full number: not one we used, nor anything shaped like one outside ids."""
    for phone in PHONES.values():
        assert phone not in response.text

    def strip_ids(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: strip_ids(v)
                for k, v in value.items()
                if not (k.endswith("_id") or k in ("next_cursor", "request_id"))
            }
        if isinstance(value, list):
            return [strip_ids(v) for v in value]
        return value

    assert not ELEVEN_DIGITS.search(json.dumps(strip_ids(response.json()), ensure_ascii=False))


def set_up(api: Api) -> Office:
    office = Office(api)
    p1 = office.p1
    office.principal("c1", "consultant", project_ids=[p1], team_id="team-a")
    office.principal("c2", "consultant", project_ids=[p1], team_id="team-a")
    office.principal("c3", "consultant", project_ids=[p1], team_id="team-b")
    office.principal("c4", "consultant", project_ids=[P2], team_id="team-a")
    office.principal("sup", "supervisor", project_ids=[p1], team_id="team-a")
    office.principal("mgr1", "manager", project_ids=[p1])
    office.principal("mgr2", "manager", project_ids=[P2])
    office.principal("agent-a", "channel_agent", partner_id="pa")
    office.principal("agent-b", "channel_agent", partner_id="pb")
    office.principal("aud", "auditor")

    for key in ("a1", "a2", "a3"):
        office.report("agent-a", "pa", p1, PHONES[key])
    office.report("agent-b", "pb", p1, PHONES["b1"])
    assert office.report("agent-b", "pb", p1, PHONES["a1"])["reason"] == "protected"
    office.report("agent-a", "pa", P2, PHONES["a4"])
    api.clock.advance(hours=1)
    office.visit("c1", p1, "a1", "pa")
    office.visit("c2", p1, "a2", "pa")
    office.visit("c3", p1, "b1", "pb")
    office.visit("c1", p1, "w1")
    office.visit("c4", P2, "a4", "pa")
    office.clients["a3"] = office.report("agent-a", "pa", p1, PHONES["a3"])["client_id"]
    return office


# ------------------------------------------------------------------ role scoping


def test_a_consultant_sees_only_their_own_buyers_and_tasks(api: Api) -> None:
    office = set_up(api)

    assert office.client_ids("c1") == office.named("a1", "w1")
    assert office.task_ids("c1") == office.named("a1", "w1")
    assert office.client_ids("c1", consultant_id="c2") == set()
    assert office.client_ids("c2") == office.named("a2")

    # Asking for a colleague's tasks finds none: the list holds only the caller's own.
    assert office.task_ids("c1", consultant_id="c2") == set()
    assert office.task_ids("c1", consultant_id="c1") == office.named("a1", "w1")
    # The reports a consultant sees are those of their own buyers.
    reports = office.ok("/v1/reports", "c1")["items"]
    assert {r["client_id"] for r in reports} == office.named("a1")


def test_a_supervisor_sees_the_team_and_the_escalated_list(api: Api) -> None:
    office = set_up(api)
    team = office.named("a1", "a2", "w1")  # c1's and c2's; c3 is in another team

    assert office.client_ids("sup") == team
    assert office.task_ids("sup") == team
    assert office.task_ids("sup", escalated="true") == set()

    # c1 follows up on a1 as an A buyer (next due in 3 days); nobody calls the others.
    office.command(
        f"/v1/clients/{office.clients['a1']}/follow-ups",
        {"method": "call", "summary": "keen", "effective": True, "grade": "A"},
        as_="c1",
    )
    api.clock.advance(days=2, minutes=1)  # first follow-ups were due a day after the visit
    # The deadline processor escalates them (a day past due, the default for every grade);
    # a turn of it here, then read after everything it wrote.
    api.container.deadlines_step()
    office.head = api.container.uow.position()

    escalated = office.ok("/v1/tasks", "sup", escalated="true")["items"]
    assert {t["client_id"] for t in escalated} == office.named("a2", "w1")
    assert all((t["status"], t["escalated"]) == ("overdue", True) for t in escalated)
    assert office.task_ids("sup", escalated="false") == office.named("a1")

    # The escalations are rule tasks, each role seeing its own scope of them
    def escalations(as_: str) -> set[str]:
        items = office.ok("/v1/rule-tasks", as_, kind="follow_up_escalated")["items"]
        assert all((t["assignee_role"], t["status"]) == ("supervisor", "open") for t in items)
        return {t["client_id"] for t in items}

    assert escalations("sup") == office.named("a2", "w1")
    assert escalations("c1") == office.named("w1")
    assert escalations("mgr1") == office.named("a2", "w1", "b1")
    assert escalations("mgr2") == office.named("a4")  # the other project's
    # Naming a colleague narrows nothing open: an empty page, as every list answers it.
    assert office.ok("/v1/rule-tasks", "c1", consultant_id="c2")["items"] == []
    assert [t["client_id"] for t in office.ok("/v1/tasks", "c1")["items"]] == [
        office.clients["w1"],  # due first
        office.clients["a1"],
    ]


def test_the_protection_board_counts_endings_per_consultant_and_team(api: Api) -> None:
    office = set_up(api)
    # Visits were an hour in; protection (30 days) then ends in 5 days, then in 2.
    api.clock.advance(days=25)

    board = office.ok("/v1/views/protection-board", "sup")["items"]
    assert {
        (r["consultant_id"], r["team_id"], r["ending_within_3_days"], r["ending_within_7_days"])
        for r in board
    } == {("c1", "team-a", 0, 2), ("c2", "team-a", 0, 1)}  # not c3: another team
    mine = office.ok("/v1/views/protection-board", "c1")["items"]
    assert [(r["consultant_id"], r["ending_within_7_days"]) for r in mine] == [("c1", 2)]

    api.clock.advance(days=3)
    board = office.ok("/v1/views/protection-board", "mgr1")["items"]
    assert {(r["consultant_id"], r["ending_within_3_days"]) for r in board} == {
        ("c1", 2),
        ("c2", 1),
        ("c3", 1),
    }


def test_a_manager_sees_only_their_projects(api: Api) -> None:
    office = set_up(api)

    assert office.client_ids("mgr1") == office.named("a1", "a2", "a3", "b1", "w1")
    assert office.client_ids("mgr2") == office.named("a4")
    assert office.client_ids("mgr1", project_id=P2) == set()
    funnel = office.ok("/v1/views/funnel", "mgr2")["items"]
    assert {r["project_id"] for r in funnel} == {P2}
    assert {r["project_id"] for r in office.ok("/v1/reports", "mgr1")["items"]} == {office.p1}


def test_a_channel_agent_sees_only_its_partners_reports_and_outcomes(api: Api) -> None:
    office = set_up(api)

    reports = office.ok("/v1/reports", "agent-a")["items"]
    assert {r["report_id"] for r in reports} == {
        rid for rid, partner in office.reports.items() if partner == "pa"
    }
    assert {r["partner_id"] for r in reports} == {"pa"}
    assert office.ok("/v1/reports", "agent-a", partner_id="pb")["items"] == []
    # Buyers the channel won, in any project; never pb's, never the walk-in.
    assert office.client_ids("agent-a") == office.named("a1", "a2", "a4")
    assert office.client_ids("agent-b") == office.named("b1")
    assert office.client_ids("agent-a", partner_id="pb") == set()
    for path in ("/v1/views/channels", "/v1/views/funnel"):
        rows = office.ok(path, "agent-a")["items"]
        assert rows and {r["partner_id"] for r in rows} == {"pa"}
    for path in ("/v1/tasks", "/v1/views/consultants", "/v1/views/lost-reasons"):
        assert office.get(path, "agent-a").status_code == 403


def test_an_auditor_reads_everything(api: Api) -> None:
    office = set_up(api)

    assert office.client_ids("aud") == set(office.clients.values())
    assert len(office.ok("/v1/reports", "aud")["items"]) == len(office.reports) == 7
    assert office.task_ids("aud") == office.named("a1", "a2", "b1", "w1", "a4")
    for path in (
        "/v1/views/funnel",
        "/v1/views/channels",
        "/v1/views/consultants",
        "/v1/views/protection-board",
        "/v1/views/lost-reasons",
        "/v1/views/pool",
    ):
        office.ok(path, "aud")
    channels = office.ok("/v1/views/channels", "aud")["items"]
    assert {(r["project_id"], r["partner_id"]) for r in channels} == {
        (office.p1, "pa"),
        (office.p1, "pb"),
        (P2, "pa"),
    }
    assert sum(r["rejected_protected"] for r in channels) == 1


# -------------------------------------------------------------------- pagination


@pytest.mark.parametrize("path", ["/v1/clients", "/v1/reports", "/v1/tasks"])
def test_cursor_pages_walk_every_row_once(api: Api, path: str) -> None:
    office = set_up(api)
    key = "report_id" if path == "/v1/reports" else "client_id"
    everything = [i[key] for i in office.ok(path, "aud", limit=500)["items"]]

    walked: list[str] = []
    pages, cursor = 0, None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = office.ok(path, "aud", **params)
        assert len(body["items"]) <= 2
        walked += [i[key] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert walked == everything  # same order, no duplicates, nothing skipped
    assert len(set(walked)) == len(walked) >= 5
    assert pages == (len(everything) + 1) // 2


@pytest.mark.parametrize("cursor", ["not a cursor!", "e30", "WyJhIl0"])  # "{}", ["a"]
def test_a_bad_cursor_is_a_field_error(api: Api, cursor: str) -> None:
    office = set_up(api)

    response = office.get("/v1/clients", "aud", cursor=cursor)

    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in problem["errors"]] == ["cursor"]


@pytest.mark.parametrize(
    "values",
    [
        ["yesterday", "x"],  # not an instant
        [20260101, "x"],  # not even text
        ["2026-03-03T02:00:00+00:00", {"client_id": "x"}],  # a key that is no key
    ],
    ids=["bad-instant", "number-instant", "object-key"],
)
def test_a_cursor_of_the_right_shape_with_bad_values_is_a_field_error(
    api: Api, values: list[Any]
) -> None:
    office = set_up(api)
    forged = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")

    response = office.get("/v1/clients", "aud", cursor=forged)

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["cursor"]


# ---------------------------------------------------------------- read-your-writes


def test_a_query_after_a_commands_position_sees_that_command(impatient_api: Api) -> None:
    api = impatient_api
    office = set_up(api)
    body = office.report("agent-b", "pb", office.p1, "13855550001")

    views_reach(api, office.head)
    found = office.ok("/v1/reports", "agent-b", after=office.head)["items"]
    assert body["report_id"] in {r["report_id"] for r in found}

    # With the follower stopped the view cannot catch up: 503 with the lag, never stale.
    views_loop = next(loop for loop in api.container.loops if loop.name == "views")
    views_loop.stop()
    body = office.report("agent-b", "pb", office.p1, "13855550002")
    behind = office.get("/v1/reports", "agent-b", after=office.head)
    assert behind.status_code == 503
    problem = behind.json()
    assert (problem["code"], problem["position"]) == ("views_behind", office.head)
    assert problem["lag"] >= 1
    assert behind.headers["Retry-After"] == "1"
    by_header = api.client.get(
        "/v1/reports", headers={**office.keys["agent-b"], "Yingke-After": str(office.head)}
    )
    assert by_header.status_code == 503

    api.container.follower.catch_up()
    views_reach(api, office.head)
    found = office.ok("/v1/reports", "agent-b", after=office.head)["items"]
    assert body["report_id"] in {r["report_id"] for r in found}


def test_a_position_beyond_the_head_is_refused_at_once_naming_the_field(api: Api) -> None:
    office = set_up(api)
    beyond = office.head + 1000

    response = office.get("/v1/clients", "aud", after=beyond)

    # No command answered that position, so waiting for it could only end in a 503.
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["errors"][0]["field"] == "after"
    assert problem["errors"][0]["code"] == "position_beyond_head"


def test_view_status_and_metrics_list_every_view_with_its_lag(api: Api) -> None:
    office = set_up(api)
    office.ok("/v1/clients", "aud")  # waits until every view has reached the head

    status = office.ok("/v1/views/status", "aud")
    assert status["head"] >= office.head
    assert sorted(v["view"] for v in status["views"]) == VIEW_NAMES
    for view in status["views"]:
        assert view["position"] >= office.head
        assert view["lag"] == status["head"] - view["position"] == 0

    metrics = api.client.get("/metrics")
    assert metrics.status_code == 200
    lags = dict(re.findall(r'^yingke_view_lag\{view="([a-z_]+)"\} ([\d.]+)$', metrics.text, re.M))
    assert sorted(lags) == VIEW_NAMES
    assert {float(lag) for lag in lags.values()} == {0.0}
    assert re.search(r"^yingke_events_head [\d.]+$", metrics.text, re.M)
    for name in VIEW_NAMES:
        assert f'yingke_view_position{{view="{name}"}}' in metrics.text
