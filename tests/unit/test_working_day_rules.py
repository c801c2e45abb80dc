"""Given/when/then on the working day's rules (issue 13), no database: a buyer going
dormant (待激活), an overdue follow-up escalated per grade, a negotiation escalated to the
manager, and the policy fields that drive them (old stored versions load with defaults).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from domain.errors import InvalidInput
from domain.policy import Policy, ProjectPolicy, validate_settings
from tests.support import START
from tests.unit.lifecycle_support import (
    OWNER,
    POLICY,
    SUPERVISOR,
    TRACE,
    days,
    follow_up,
    hours,
    new_events,
    of_type,
    owned_client,
    release_by_loss,
    visit,
)
from tests.unit.test_deal import DEADLINE, PRICE, RULES, deposited, new_deal

SYSTEM_TRACE: dict[str, Any] = {
    "actor": {"id": "system", "role": "system"},
    "correlation_id": "deadline:test",
}
# Dormant after three days; escalation 2 h for A, 12 h for B (and the ungraded), 2 days for C.
RULES_OF_THE_DAY = replace(
    POLICY,
    dormant_after="P3D",
    escalate_after={"A": "PT2H", "B": "PT12H", "C": "P2D"},
    negotiation_escalation="P15D",
)


# ------------------------------------------------------------------ the policy


def test_the_new_fields_default_to_the_seeds() -> None:
    policy = Policy()

    assert (policy.dormant_after, policy.negotiation_escalation) == ("P7D", "P15D")
    assert policy.recent_visit_window == "P7D"
    assert policy.escalate_after == {"A": "P1D", "B": "P1D", "C": "P1D"}
    assert policy.loss_review_comment_required is True


def test_a_policy_version_stored_before_the_fields_existed_loads_with_the_defaults() -> None:
    # Given a version recorded by an older release: none of the new keys in its settings
    stream = ProjectPolicy.open("p1", START, TRACE)
    stored = {k: v for k, v in Policy().settings().items() if k in {"judge_rule", "protection"}}
    stream.trigger_event(
        ProjectPolicy.PolicyChanged, policy_version=1, settings=stored, timestamp=START, **TRACE
    )

    # When it is read back
    old = stream.at_version(1)

    # Then the rules it never named take their defaults
    assert old.version == 1
    assert (old.dormant_after, old.recent_visit_window) == ("P7D", "P7D")
    assert old.escalate_after == {"A": "P1D", "B": "P1D", "C": "P1D"}
    assert old.loss_review_comment_required is True


def test_escalation_per_grade_may_name_some_grades_and_the_rest_keep_the_default() -> None:
    settings = validate_settings({"escalate_after": {"A": "PT4H"}})

    assert settings["escalate_after"] == {"A": "PT4H", "B": "P1D", "C": "P1D"}


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"dormant_after": "P1M"}, "dormant_after"),
        ({"negotiation_escalation": "soon"}, "negotiation_escalation"),
        ({"recent_visit_window": "PT0S"}, "recent_visit_window"),
        ({"escalate_after": {"D": "P1D"}}, "escalate_after"),
        ({"escalate_after": "P1D"}, "escalate_after"),
        ({"escalate_after": {"A": "tomorrow"}}, "escalate_after.A"),
        ({"loss_review_comment_required": "yes"}, "loss_review_comment_required"),
    ],
)
def test_bad_values_for_the_new_fields_are_refused_naming_the_field(
    settings: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_settings(settings)

    assert caught.value.field == field


# --------------------------------------------------------------- 待激活 (dormant)


def test_a_buyer_without_contact_for_dormant_after_goes_dormant_once() -> None:
    # Given a buyer owned since START, never reached since
    client = owned_client(policy=RULES_OF_THE_DAY)
    epoch = client.owner.decided_version if client.owner else None

    # When the deadline comes a second early, then on time, then again
    early = client.go_dormant(epoch, RULES_OF_THE_DAY, START + days(3) - hours(0.001), TRACE)
    on_time = client.go_dormant(epoch, RULES_OF_THE_DAY, START + days(3), SYSTEM_TRACE)
    again = client.go_dormant(epoch, RULES_OF_THE_DAY, START + days(4), SYSTEM_TRACE)

    # Then the buyer is 待激活 exactly once, counted from the start of ownership
    assert (early, on_time, again) == (False, True, False)
    event = of_type(new_events(client), "ClientWentDormant")
    assert (event.consultant_id, event.last_activity_at) == (OWNER.id, START)
    assert event.policy_version == RULES_OF_THE_DAY.version
    assert client.dormant


def test_a_follow_up_wakes_the_buyer_and_the_clock_starts_again_from_it() -> None:
    # Given a dormant buyer
    client = owned_client(policy=RULES_OF_THE_DAY)
    client.go_dormant(None, RULES_OF_THE_DAY, START + days(3), SYSTEM_TRACE)
    assert client.dormant

    # When the owner calls on day 4, even unanswered (the owner is working the buyer)
    follow_up(client, START + days(4), effective=False, policy=RULES_OF_THE_DAY)

    # Then they are awake; they go dormant again only three days after that follow-up
    assert not client.dormant
    new_events(client)
    assert not client.go_dormant(None, RULES_OF_THE_DAY, START + days(7) - hours(1), TRACE)
    assert client.go_dormant(None, RULES_OF_THE_DAY, START + days(7), SYSTEM_TRACE)
    assert of_type(new_events(client), "ClientWentDormant").last_activity_at == START + days(4)


def test_a_previous_owners_follow_up_does_not_count_for_the_new_owner() -> None:
    client = owned_client(policy=RULES_OF_THE_DAY)
    follow_up(client, START + days(1), policy=RULES_OF_THE_DAY)
    client.transfer(
        to="cons-2",
        basis="transfer",
        reason="reassigned",
        policy=RULES_OF_THE_DAY,
        at=START + days(2),
        trace=TRACE,
    )

    assert client.last_activity_at() == START + days(2)


def test_a_visit_by_the_owned_buyer_counts_as_contact() -> None:
    client = owned_client(policy=RULES_OF_THE_DAY)

    visit(client, START + days(2), policy=RULES_OF_THE_DAY)

    assert client.last_activity_at() == START + days(2)
    assert not client.go_dormant(None, RULES_OF_THE_DAY, START + days(3), TRACE)


def test_nobody_goes_dormant_in_a_deal_in_the_pool_or_under_an_old_ownership() -> None:
    client = owned_client(policy=RULES_OF_THE_DAY)
    epoch = client.owner.decided_version if client.owner else None
    assert not client.go_dormant((epoch or 0) + 99, RULES_OF_THE_DAY, START + days(5), TRACE)

    in_deal = owned_client(policy=RULES_OF_THE_DAY)
    deal = new_deal()
    in_deal.record_deal_milestone(
        deal_id=deal.id,
        unit_id=deal.unit_id,
        milestone="opened",
        deal_status="open",
        amount=None,
        at=START + hours(1),
        trace=TRACE,
    )
    assert not in_deal.go_dormant(None, RULES_OF_THE_DAY, START + days(5), TRACE)

    released = owned_client(policy=RULES_OF_THE_DAY)
    release_by_loss(released, START + days(1), RULES_OF_THE_DAY)
    assert not released.go_dormant(None, RULES_OF_THE_DAY, START + days(5), TRACE)


# ------------------------------------------------------- escalation per grade


def test_an_overdue_follow_up_escalates_after_its_grades_wait_once() -> None:
    # Given an A buyer whose next follow-up is due three days after the last one
    client = owned_client(policy=RULES_OF_THE_DAY)
    follow_up(client, START + hours(1), grade="A", policy=RULES_OF_THE_DAY)
    due = START + hours(1) + days(3)
    assert client.next_follow_up_due == due
    new_events(client)

    # When the processor looks just before and at due + 2 h (A), then again
    assert not client.escalate_follow_up(None, RULES_OF_THE_DAY, due + hours(1.99), TRACE)
    assert client.escalate_follow_up(None, RULES_OF_THE_DAY, due + hours(2), SYSTEM_TRACE)
    assert not client.escalate_follow_up(None, RULES_OF_THE_DAY, due + days(1), TRACE)

    # Then one escalation names the owner, the missed due time and the grade
    event = of_type(new_events(client), "FollowUpEscalated")
    assert (event.consultant_id, event.due_at, event.grade) == (OWNER.id, due, "A")


def test_each_grade_waits_its_own_time_and_the_ungraded_wait_as_b() -> None:
    for grade, wait in (("B", hours(12)), ("C", days(2)), (None, hours(12))):
        client = owned_client(policy=RULES_OF_THE_DAY)
        if grade is not None:
            client.change_grade(SUPERVISOR, grade, "seen", RULES_OF_THE_DAY, START, TRACE)
        due = client.next_follow_up_due  # the first follow-up, 24 h after assignment
        assert due == START + hours(24)

        before = client.escalate_follow_up(None, RULES_OF_THE_DAY, due + wait - hours(0.01), TRACE)
        at = client.escalate_follow_up(None, RULES_OF_THE_DAY, due + wait, TRACE)

        assert (before, at) == (False, True), grade


def test_a_follow_up_logged_moves_the_due_time_and_a_later_miss_escalates_again() -> None:
    client = owned_client(policy=RULES_OF_THE_DAY)
    first_due = START + hours(24)
    client.escalate_follow_up(None, RULES_OF_THE_DAY, first_due + hours(12), TRACE)

    follow_up(client, START + days(2), grade="A", policy=RULES_OF_THE_DAY)
    second_due = START + days(5)
    new_events(client)

    assert client.next_follow_up_due == second_due
    assert client.escalate_follow_up(None, RULES_OF_THE_DAY, second_due + hours(2), TRACE)
    assert of_type(new_events(client), "FollowUpEscalated").due_at == second_due


# ---------------------------------------------------- negotiation (谈判) escalation


def test_a_deposit_without_a_contract_for_fifteen_days_goes_to_the_manager_once() -> None:
    # Given a deposit paid at START + 1 h (and a subscription the day after)
    deal = deposited()
    deal.sign_subscription(PRICE, "full", DEADLINE + days(30), RULES, START + days(1), TRACE)
    new_events(deal)
    after = timedelta(days=15)

    # When the processor looks before, at and after fifteen days from the deposit
    before = deal.escalate_negotiation(after, 7, START + hours(1) + days(15) - hours(1), TRACE)
    on_time = deal.escalate_negotiation(after, 7, START + hours(1) + days(15), SYSTEM_TRACE)
    again = deal.escalate_negotiation(after, 7, START + days(20), TRACE)

    # Then one escalation, counted from the deposit, not from the subscription
    assert (before, on_time, again) == (False, True, False)
    event = of_type(new_events(deal), "NegotiationEscalated")
    assert (event.stage, event.since, event.consultant_id) == (
        "subscribed",
        START + hours(1),
        "cons-1",
    )
    assert (event.project_id, event.client_id, event.policy_version) == ("p1", deal.client_id, 7)


def test_no_escalation_before_a_deposit_after_a_contract_or_after_cancelling() -> None:
    after = timedelta(days=15)
    opened = new_deal()
    assert not opened.escalate_negotiation(after, 0, START + days(30), TRACE)

    signed = deposited()
    signed.sign_subscription(PRICE, "full", None, RULES, START + hours(2), TRACE)
    signed.sign_contract("HT-1", PRICE, RULES, START + hours(3), TRACE)
    assert not signed.escalate_negotiation(after, 0, START + days(30), TRACE)

    cancelled = deposited()
    cancelled.cancel("changed mind", "no_fault", RULES, START + days(2), TRACE)
    assert not cancelled.escalate_negotiation(after, 0, START + days(30), TRACE)


# ------------------------------------------------------------ the loss review


def test_a_loss_decision_needs_a_review_comment_while_the_policy_says_so() -> None:
    # Given a pending loss request
    client = owned_client()
    client.request_loss(OWNER, "loss-1", "price", "sealed", START, TRACE)
    new_events(client)

    # When a supervisor approves or rejects it with a blank comment
    for decide in (client.approve_loss, client.reject_loss):
        with pytest.raises(InvalidInput) as caught:
            decide("loss-1", " \n", POLICY, START + hours(1), TRACE)  # type: ignore[operator]

        # Then it is refused on the comment field, and nothing is recorded
        assert (caught.value.field, caught.value.code) == ("comment", "comment_required")
    assert new_events(client) == []

    # A project that turned the rule off may decide without one
    client.reject_loss(
        "loss-1", "", replace(POLICY, loss_review_comment_required=False), START, TRACE
    )
    assert of_type(new_events(client), "LossRejected").comment == ""
