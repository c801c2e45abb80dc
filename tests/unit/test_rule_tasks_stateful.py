"""The working day's rules on one buyer, from generated command sequences: the deadline
processor's view (rule_tasks) and the Client stream must agree after any of them.

The machine of test_task_due_rule drives the real Client aggregate (visits, follow-ups
with grades, grade changes, losses, claims, transfers, protection and inactivity
releases, time passing); here the processor also looks in between, as it does every
second in `serve`. After every step:
- the view's candidate for 待激活 / escalation is exactly what the stream would act on
  (the processor neither misses a buyer nor re-issues a refused command forever);
- an open wake-up task means the stream says the buyer is dormant, and the reverse;
- an open escalation is the stream's escalation of the follow-up due now;
- acting twice at one instant acts once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from domain.clock_rules import UNGRADED_CADENCE, dormant_from, escalates_at
from domain.policy import Policy
from domain.values import parse_duration
from projections.rule_tasks import CLIENTS, TABLE, RuleTasks
from projections.runtime import Rows
from tests.unit.test_task_due_rule import TRACE, DueRuleMachine, Run, check, policies


class RuleRun(Run):
    """The due-rule run, with rule_tasks following the same events."""

    def __init__(self, policy: Policy) -> None:
        self.rules_view = RuleTasks()
        self.rule_rows = Rows(self.rules_view.tables, "sqlite")
        super().__init__(policy)

    def flush(self) -> None:
        for event in self.client.collect_events():
            self.position += 1
            if self.view.handles(event):
                self.view.apply(self.rows, event, self.position)
            if self.rules_view.handles(event):
                self.rules_view.apply(self.rule_rows, event, self.position)

    def row(self) -> dict[str, Any]:
        found = self.rule_rows.get(CLIENTS.name, str(self.client.id))
        assert found is not None
        return found

    def rule_task(self, kind: str) -> dict[str, Any] | None:
        return self.rule_rows.get(TABLE.name, str(self.client.id), kind)

    def candidates(self, now: datetime) -> tuple[bool, bool]:
        """(dormant, escalation) as the processor's queries in projections.due see it."""
        row, policy = self.row(), self.policy
        if row["consultant_id"] is None:
            return False, False
        last = row["last_activity_at"]
        dormant = last <= now - policy.delta("dormant_after") and row["dormant_as_of"] != last
        grade = row["grade"] or UNGRADED_CADENCE
        wait = parse_duration(policy.escalate_after[grade], grade)
        due = row["next_follow_up_due"]
        escalation = due is not None and due <= now - wait and row["escalated_due"] != due
        return dormant, escalation


def check_rules(run: RuleRun) -> None:
    check(run)
    client, row, now = run.client, run.row(), run.now
    owner = client.owner
    assert row["consultant_id"] == (owner.consultant_id if owner else None)
    assert row["last_activity_at"] == client.last_activity_at()
    assert row["next_follow_up_due"] == (client.next_follow_up_due if owner else None)
    assert (row["grade"] or None) == client.grade
    # The processor's candidates are exactly what the stream would act on now.
    last = client.last_activity_at()
    would_sleep = (
        owner is not None
        and last is not None
        and client.dormant_as_of != last
        and now >= dormant_from(run.policy, last)
    )
    due = client.next_follow_up_due
    would_escalate = (
        owner is not None
        and due is not None
        and client.escalated_due != due
        and now >= escalates_at(run.policy, client.grade, due)
    )
    assert run.candidates(now) == (would_sleep, would_escalate)
    # Open tasks are the stream's flags.
    wake_up = run.rule_task("wake_up")
    assert (wake_up is not None and wake_up["status"] == "open") == (
        owner is not None and client.dormant
    )
    escalated = run.rule_task("follow_up_escalated")
    open_escalation = escalated is not None and escalated["status"] == "open"
    assert open_escalation == (
        owner is not None and due is not None and client.escalated_due == due
    )
    if open_escalation:
        assert escalated is not None and escalated["since"] == due


working_day_policies = st.builds(
    lambda base, dormant, a, b: Policy(
        version=base.version,
        first_follow_up=base.first_follow_up,
        cadence=base.cadence,
        dormant_after=dormant,
        escalate_after={"A": a, "B": b, "C": "P2D"},
    ),
    policies,
    st.sampled_from(["PT12H", "P3D", "P7D"]),
    st.sampled_from(["PT2H", "P1D"]),
    st.sampled_from(["PT30M", "P1D", "P3D"]),
)


class RuleTasksMachine(DueRuleMachine):
    def __init__(self) -> None:
        super().__init__()
        self.run: RuleRun = RuleRun(Policy())

    @initialize(policy=working_day_policies)
    def start(self, policy: Policy) -> None:
        self.run = RuleRun(policy)

    @precondition(lambda self: self.run.client.owner is not None)
    @rule(twice=st.booleans())
    def the_processor_looks(self, twice: bool) -> None:
        run, client = self.run, self.run.client
        dormant, escalation = run.candidates(run.now)
        acted = (
            client.go_dormant(None, run.policy, run.now, TRACE),
            client.escalate_follow_up(None, run.policy, run.now, TRACE),
        )
        assert acted == (dormant, escalation)
        if twice:
            again = (
                client.go_dormant(None, run.policy, run.now, TRACE),
                client.escalate_follow_up(None, run.policy, run.now, TRACE),
            )
            assert again == (False, False)
        run.flush()

    @invariant()
    def rule_tasks_as_the_stream_says(self) -> None:
        check_rules(self.run)


RuleTasksMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_processors_view_agrees_with_the_stream = RuleTasksMachine.TestCase
