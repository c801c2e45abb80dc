"""The follow-up task due-time rule (跟进任务), from generated event sequences.

The real Client aggregate takes generated commands (visits, follow-ups with grades and
the consultant's own next contact, grade changes, losses, pool claims, transfers,
protection and inactivity releases, time passing); its events go through the
FollowUpTasks view over in-memory rows; the task is compared with a reference
computation written here from the rule:

- a new owner (visit, claim, transfer) must follow up within ``first_follow_up``;
- after a follow-up the next is due after the grade's cadence (ungraded: B), or at the
  consultant's own ``next_contact_at`` when that is earlier;
- a grade change recomputes that from the owner's last follow-up under the new grade
  (an earlier next contact asked for then still wins; never in the past); before the
  owner's first follow-up it changes nothing: the first follow-up stays due;
- a buyer released to the pool has no task.

After every command the task also says exactly what the aggregate says.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from domain.client import Client
from domain.policy import Policy
from domain.values import Actor, parse_duration
from domain.visits import decide_and_record_visit
from projections.follow_up_tasks import TABLE, FollowUpTasks
from projections.runtime import Rows
from tests.support import START

SUPERVISOR = Actor("sup-1", "supervisor")
TRACE: dict[str, Any] = {"actor": SUPERVISOR.as_dict(), "correlation_id": "req-due-rule"}
CONSULTANTS = ("c1", "c2", "c3")
GRADES = ("A", "B", "C")

# ------------------------------------------------------------ the reference


@dataclass
class Expected:
    """The task as the rule says it should be, computed without the domain's helpers."""

    first_follow_up: timedelta
    cadence: dict[str, timedelta]
    owner: str | None = None
    since: datetime | None = None
    grade: str | None = None
    due: datetime | None = None
    basis: str | None = None
    last_follow_up: datetime | None = None  # by whoever owned the buyer then
    last_request: datetime | None = None  # next_contact_at of that follow-up

    def gained(self, consultant: str, at: datetime) -> None:
        self.owner, self.since = consultant, at
        self.due, self.basis = at + self.first_follow_up, "first_follow_up"

    def released(self) -> None:
        self.owner = self.since = self.due = self.basis = None

    def followed(self, at: datetime, grade: str | None, request: datetime | None) -> None:
        self.grade = grade or self.grade
        self.last_follow_up, self.last_request = at, request
        self.due, self.basis = self.after_follow_up(self.grade or "B")

    def after_follow_up(self, grade: str) -> tuple[datetime, str]:
        assert self.last_follow_up is not None
        due, basis = self.last_follow_up + self.cadence[grade], f"cadence_{grade}"
        if self.last_request is not None and self.last_request < due:
            due, basis = self.last_request, "consultant_request"
        return due, basis

    def regraded(self, grade: str, at: datetime) -> None:
        if grade == self.grade:
            return
        self.grade = grade
        assert self.since is not None
        if self.last_follow_up is None or self.last_follow_up < self.since:
            return  # not followed up under this owner yet: the first follow-up stands
        due, self.basis = self.after_follow_up(grade)
        self.due = max(due, at)


# ------------------------------------------------------------ the commands

Op = tuple[Any, ...]

policies = st.builds(
    lambda first, a, b, c: Policy(
        version=3, first_follow_up=first, cadence={"A": a, "B": b, "C": c}
    ),
    st.sampled_from(["PT2H", "PT24H", "P2D"]),
    st.sampled_from(["P1D", "P3D"]),
    st.sampled_from(["P7D", "P5D"]),
    st.sampled_from(["P30D", "P14D"]),
)


class Run:
    """One buyer, the view over in-memory rows, and the reference, kept in step."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.now = START
        self.client = Client.register(
            uuid.uuid4(),
            project_id="p1",
            phone_masked="138****0000",
            phone_hash="h",
            pii="sealed",
            at=START,
            trace=TRACE,
        )
        self.view = FollowUpTasks()
        self.rows = Rows(self.view.tables, "sqlite")  # tx None: memory only
        self.position = 0
        self.expected = Expected(
            first_follow_up=policy.delta("first_follow_up"),
            cadence={g: parse_duration(d, g) for g, d in policy.cadence.items()},
        )
        self.flush()

    def flush(self) -> None:
        for event in self.client.collect_events():
            self.position += 1
            if self.view.handles(event):
                self.view.apply(self.rows, event, self.position)

    def task(self) -> dict[str, Any] | None:
        return self.rows.get(TABLE.name, str(self.client.id))

    def do(self, op: Op) -> None:
        client, expected, policy = self.client, self.expected, self.policy
        kind, owner = op[0], client.owner
        if kind == "wait":
            self.now += timedelta(minutes=op[1])
        elif kind == "visit":
            # The application's visit (gather the claims, decide, record), not a copy.
            decision, _ = decide_and_record_visit(
                client,
                None,
                policy,
                visit_id=str(uuid.uuid4()),
                consultant_id=op[1],
                partner_id=None,
                agent_id=None,
                pii="sealed",
                reseal=lambda report: "resealed",
                at=self.now,
                trace=TRACE,
            )
            if decision.kind != "protected":  # the owner's own visit moves no task
                expected.gained(op[1], self.now)
        elif kind == "follow" and owner is not None:
            request = self.now + timedelta(minutes=op[3]) if op[3] is not None else None
            client.log_follow_up(
                actor=SUPERVISOR,
                follow_up_id=str(uuid.uuid4()),
                method="call",
                effective=op[1],
                next_contact_at=request,
                grade=op[2],
                pii="sealed",
                policy=policy,
                at=self.now,
                trace=TRACE,
            )
            expected.followed(self.now, op[2], request)
        elif kind == "grade" and owner is not None:
            client.change_grade(SUPERVISOR, op[1], "regraded", policy, self.now, TRACE)
            expected.regraded(op[1], self.now)
        elif kind == "lose" and owner is not None:
            request_id = str(uuid.uuid4())
            client.request_loss(SUPERVISOR, request_id, "price", "sealed", self.now, TRACE)
            client.approve_loss(request_id, "ok", policy, self.now, TRACE)
            expected.released()
        elif kind == "claim" and client.in_pool:
            client.claim(str(uuid.uuid4()), op[1], None, policy, self.now, TRACE)
            expected.gained(op[1], self.now)
        elif kind == "transfer" and (owner is None or owner.consultant_id != op[1]):
            client.transfer(
                to=op[1], basis="transfer", reason="r", policy=policy, at=self.now, trace=TRACE
            )
            expected.gained(op[1], self.now)
        elif kind == "expire" and owner is not None:
            self.now = max(self.now, owner.protected_until)
            assert client.expire_protection(None, policy, self.now, TRACE)
            expected.released()
        elif kind == "inactive" and owner is not None and client.inactive_after is not None:
            self.now = max(self.now, client.inactive_after)
            assert client.release_inactive(None, policy, self.now, TRACE)
            expected.released()
        self.flush()


def check(run: Run) -> None:
    client, expected, task = run.client, run.expected, run.task()
    if expected.owner is None:
        assert client.owner is None
        assert task is None, "a released buyer keeps no task"
        return
    assert task is not None
    assert client.owner is not None and client.owner.consultant_id == expected.owner
    assert (task["consultant_id"], task["grade"]) == (expected.owner, expected.grade)
    assert (task["due_at"], task["basis"]) == (expected.due, expected.basis)
    # The view says what the aggregate says (what client_overview and the API show).
    assert (task["due_at"], task["basis"]) == (client.next_follow_up_due, client.follow_up_basis)
    assert task["owned_since"] == client.owner.since
    assert task["protected_until"] == client.owner.protected_until
    assert task["last_follow_up_at"] == client.last_follow_up_at


# Next contacts a minute either side of (or exactly at) a cadence: where "earlier" bites.
NEAR_A_CADENCE = st.builds(
    lambda days, minutes: days * 24 * 60 + minutes,
    st.sampled_from([1, 2, 3, 5, 7, 14, 30]),
    st.sampled_from([-1, 0, 1]),
)


class DueRuleMachine(RuleBasedStateMachine):
    """Commands on one buyer, each only when it can apply; the task checked after each."""

    def __init__(self) -> None:
        super().__init__()
        self.run = Run(Policy())

    @initialize(policy=policies)
    def start(self, policy: Policy) -> None:
        self.run = Run(policy)

    def owned(self) -> bool:
        return self.run.client.owner is not None

    @rule(minutes=st.integers(1, 60 * 24 * 40))
    def wait(self, minutes: int) -> None:
        self.run.do(("wait", minutes))

    @rule(consultant=st.sampled_from(CONSULTANTS))
    def visit(self, consultant: str) -> None:
        self.run.do(("visit", consultant))

    @precondition(owned)
    @rule(
        effective=st.booleans(),
        grade=st.none() | st.sampled_from(GRADES),
        ahead=st.none() | st.integers(1, 60 * 24 * 40) | NEAR_A_CADENCE,
    )
    def follow(self, effective: bool, grade: str | None, ahead: int | None) -> None:
        self.run.do(("follow", effective, grade, ahead))

    @precondition(owned)
    @rule(grade=st.sampled_from(GRADES))
    def regrade(self, grade: str) -> None:
        self.run.do(("grade", grade))

    @precondition(owned)
    @rule(
        effective=st.booleans(),
        first=st.none() | st.sampled_from(GRADES),
        ahead=st.none() | NEAR_A_CADENCE,
        minutes=st.integers(0, 60 * 24 * 40),
        then=st.sampled_from(GRADES),
    )
    def follow_up_then_regrade(
        self, effective: bool, first: str | None, ahead: int | None, minutes: int, then: str
    ) -> None:
        """The path the grade rule is about: a follow-up, time, a new grade."""
        follow = ("follow", effective, first, ahead)
        for op in (follow, ("wait", minutes), ("grade", then)):
            self.run.do(op)
            check(self.run)

    @precondition(lambda self: self.run.client.in_pool)
    @rule(consultant=st.sampled_from(CONSULTANTS))
    def claim(self, consultant: str) -> None:
        self.run.do(("claim", consultant))

    @rule(consultant=st.sampled_from(CONSULTANTS))
    def transfer(self, consultant: str) -> None:
        self.run.do(("transfer", consultant))

    @precondition(owned)
    @rule(how=st.sampled_from(["lose", "expire", "inactive"]))
    def release(self, how: str) -> None:
        self.run.do((how,))

    @invariant()
    def task_as_the_rule_says(self) -> None:
        check(self.run)


DueRuleMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_task_is_due_as_the_rule_says_after_any_sequence = DueRuleMachine.TestCase


def due(run: Run) -> tuple[datetime, str]:
    task = run.task()
    assert task is not None
    return task["due_at"], task["basis"]


def test_a_sequence_in_full() -> None:
    """The rule in one readable story, with the default policy (24 h; A 3 d, B 7 d, C 30 d)."""
    run = Run(Policy())
    run.do(("visit", "c1"))
    assert due(run) == (START + timedelta(hours=24), "first_follow_up")
    run.do(("wait", 60))
    run.do(("follow", True, None, None))  # ungraded: weekly
    assert due(run) == (START + timedelta(hours=1, days=7), "cadence_B")
    run.do(("follow", True, "A", 60 * 24 * 5))  # A's 3 days beat the 5 asked for
    assert due(run) == (START + timedelta(hours=1, days=3), "cadence_A")
    run.do(("follow", False, None, 60 * 24))  # asked for tomorrow: earlier than A
    assert due(run) == (START + timedelta(hours=1, days=1), "consultant_request")
    run.do(("follow", True, None, None))
    run.do(("wait", 60 * 24 * 2))
    run.do(("grade", "C"))  # from the last follow-up, 2 days ago: 30 days after it
    assert due(run) == (START + timedelta(hours=1, days=30), "cadence_C")
    run.do(("wait", 60 * 24 * 40))
    run.do(("grade", "A"))  # 3 days after the last follow-up is long past: now
    assert due(run) == (run.now, "cadence_A")
    run.do(("lose",))
    assert run.task() is None
    run.do(("claim", "c2"))
    assert due(run) == (run.now + timedelta(hours=24), "first_follow_up")
    task = run.task()
    assert task is not None and task["consultant_id"] == "c2"


# ------------------------------------------------- grade changes, case by case


@pytest.mark.parametrize("previous_owner_followed_up", [False, True])
def test_grading_before_the_first_follow_up_keeps_the_first_follow_up_due(
    previous_owner_followed_up: bool,
) -> None:
    run = Run(Policy())
    run.do(("visit", "c1"))
    if previous_owner_followed_up:
        run.do(("follow", True, "B", None))
        run.do(("wait", 60 * 24 * 2))
        run.do(("transfer", "c2"))
    gained_at = run.now
    run.do(("wait", 60))
    run.do(("grade", "C"))

    task = run.task()
    assert task is not None
    assert (task["due_at"], task["basis"]) == (gained_at + timedelta(hours=24), "first_follow_up")


def test_a_grade_change_keeps_an_earlier_next_contact_the_consultant_asked_for() -> None:
    run = Run(Policy())
    run.do(("visit", "c1"))
    run.do(("wait", 60))
    asked_at = run.now
    run.do(("follow", True, "B", 60 * 24))  # call again tomorrow
    run.do(("wait", 60))
    run.do(("grade", "C"))

    task = run.task()
    assert task is not None
    assert task["due_at"] == asked_at + timedelta(days=1)
