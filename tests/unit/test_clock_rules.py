"""The protection clock and follow-up cadence: the pure rules, then the same rules as the
Client aggregate applies them (given a visit award / when a contact / then events)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.clock_rules import (
    extended_protection,
    first_follow_up_due,
    inactive_after,
    next_follow_up_due,
)
from domain.errors import InvalidInput
from domain.policy import Policy
from tests.support import START
from tests.unit.lifecycle_support import (
    POLICY,
    days,
    follow_up,
    hours,
    new_client,
    new_events,
    of_type,
    owned_client,
    types,
    visit,
)

SINCE = START
BASE_END = SINCE + days(10)  # POLICY.protection
HARD_END = SINCE + days(20)  # POLICY.protection_max

# ------------------------------------------------------------------ pure rules


def test_an_extension_moves_the_end_to_now_plus_the_extension_when_that_is_later() -> None:
    assert extended_protection(POLICY, SINCE, BASE_END, SINCE + days(8)) == SINCE + days(11)


def test_an_extension_that_would_land_earlier_does_not_move_the_end() -> None:
    # 2 days in, now + 3 days is well before the 10-day end: nothing moves backwards
    assert extended_protection(POLICY, SINCE, BASE_END, SINCE + days(2)) is None
    # exactly equal is no move either
    assert extended_protection(POLICY, SINCE, BASE_END, SINCE + days(7)) is None


def test_an_extension_is_capped_at_since_plus_protection_max() -> None:
    current = SINCE + days(19)
    assert extended_protection(POLICY, SINCE, current, SINCE + days(18)) == HARD_END


def test_at_the_cap_an_extension_changes_nothing() -> None:
    assert extended_protection(POLICY, SINCE, HARD_END, SINCE + days(19)) is None


def test_first_follow_up_is_due_the_policy_delay_after_assignment() -> None:
    assert first_follow_up_due(POLICY, SINCE) == SINCE + hours(24)
    assert first_follow_up_due(Policy(first_follow_up="PT2H"), SINCE) == SINCE + hours(2)


@pytest.mark.parametrize(("grade", "after"), [("A", 3), ("B", 7), ("C", 30), (None, 7)])
def test_the_next_follow_up_follows_the_grade_cadence(grade: str | None, after: int) -> None:
    due, basis = next_follow_up_due(POLICY, grade, SINCE, None)
    assert due == SINCE + days(after)
    assert basis == f"cadence_{grade or 'B'}"


def test_a_consultants_earlier_next_contact_wins_over_the_cadence() -> None:
    due, basis = next_follow_up_due(POLICY, "C", SINCE, SINCE + days(2))
    assert (due, basis) == (SINCE + days(2), "consultant_request")


def test_a_consultants_later_next_contact_does_not_push_the_cadence_back() -> None:
    due, basis = next_follow_up_due(POLICY, "A", SINCE, SINCE + days(10))
    assert (due, basis) == (SINCE + days(3), "cadence_A")


def test_a_project_cadence_overrides_the_defaults() -> None:
    policy = Policy(cadence={"A": "P1D", "B": "P2D", "C": "P5D"})
    assert next_follow_up_due(policy, "C", SINCE, None)[0] == SINCE + days(5)


def test_inactivity_is_counted_from_the_last_activity() -> None:
    assert inactive_after(POLICY, SINCE + days(1)) == SINCE + days(8)


# ----------------------------------------------------- the clock on the aggregate


def test_the_visit_award_starts_protection_and_the_schedule() -> None:
    # Given a new buyer / When the deciding visit happens
    client = new_client()
    visit(client, START)

    # Then ownership runs for the base period and the first follow-up is due in 24 h
    events = new_events(client)
    assert types(events)[-2:] == ["OwnershipAwarded", "ScheduleUpdated"]
    schedule = of_type(events, "ScheduleUpdated")
    assert schedule.next_follow_up_due == START + hours(24)
    assert schedule.inactive_after == START + days(7)
    assert schedule.basis == "first_follow_up"
    assert schedule.policy_version == POLICY.version
    assert client.owner is not None and client.owner.protected_until == BASE_END


def test_an_effective_follow_up_extends_protection_when_it_lands_later() -> None:
    # Given ownership since START with 10 days of protection
    client = owned_client()

    # When the owner reaches the buyer on day 8
    follow_up(client, START + days(8), effective=True)

    # Then protection runs to day 11, recorded with the rule version
    events = new_events(client)
    assert types(events) == ["FollowUpLogged", "ProtectionExtended", "ScheduleUpdated"]
    extended = of_type(events, "ProtectionExtended")
    assert extended.previous_until == BASE_END
    assert extended.protected_until == START + days(11)
    assert extended.trigger == "follow_up"
    assert extended.policy_version == POLICY.version
    assert client.owner is not None and client.owner.protected_until == START + days(11)


def test_an_early_effective_follow_up_never_moves_protection_backwards() -> None:
    client = owned_client()

    follow_up(client, START + days(1), effective=True)

    assert "ProtectionExtended" not in types(new_events(client))
    assert client.owner is not None and client.owner.protected_until == BASE_END


def test_a_non_effective_follow_up_does_not_extend_protection_or_reset_inactivity() -> None:
    # Given ownership with protection ending on day 10 and inactivity on day 7
    client = owned_client()

    # When the owner could not reach the buyer on day 9
    follow_up(client, START + days(9), effective=False)

    # Then nothing moves but the follow-up schedule
    events = new_events(client)
    assert types(events) == ["FollowUpLogged", "ScheduleUpdated"]
    assert of_type(events, "FollowUpLogged").effective is False
    assert of_type(events, "ScheduleUpdated").inactive_after == START + days(7)
    assert client.owner is not None and client.owner.protected_until == BASE_END
    assert client.effective_follow_ups == 0 and client.follow_ups == 1


def test_repeated_effective_follow_ups_stop_at_protection_max() -> None:
    client = owned_client()

    for day in (8, 11, 14, 17, 19, 20):
        follow_up(client, START + days(day) - hours(1), effective=True)

    assert client.owner is not None and client.owner.protected_until == HARD_END
    extensions = [e for e in new_events(client) if type(e).__name__ == "ProtectionExtended"]
    ends = [e.protected_until for e in extensions]
    assert ends == sorted(ends) and ends[-1] == HARD_END
    assert all(e.protected_until > e.previous_until for e in extensions)


def test_a_visit_by_the_owned_buyer_extends_protection_and_resets_inactivity() -> None:
    # Given ownership since START
    client = owned_client()

    # When the buyer comes back on day 9 (still protected)
    decision = visit(client, START + days(9), consultant_id="cons-9")

    # Then the owner keeps the buyer; protection and inactivity move
    events = new_events(client)
    assert decision.kind == "protected"
    assert types(events) == ["ClientVisited", "ProtectionExtended", "ScheduleUpdated"]
    assert of_type(events, "ProtectionExtended").trigger == "visit"
    assert of_type(events, "ScheduleUpdated").inactive_after == START + days(16)
    assert client.owner is not None and client.owner.consultant_id == "cons-1"


def test_an_effective_follow_up_records_the_grade_cadence_as_the_next_due_time() -> None:
    client = owned_client()
    at = START + days(1)

    follow_up(client, at, effective=True, grade="A")

    events = new_events(client)
    assert types(events) == ["FollowUpLogged", "GradeChanged", "ScheduleUpdated"]
    schedule = of_type(events, "ScheduleUpdated")
    assert schedule.next_follow_up_due == at + days(3)
    assert schedule.basis == "cadence_A"
    assert schedule.inactive_after == at + days(7)
    assert client.next_follow_up_due == at + days(3)


def test_an_ungraded_buyer_is_followed_up_weekly() -> None:
    client = owned_client()
    at = START + days(1)

    follow_up(client, at, effective=False)

    schedule = of_type(new_events(client), "ScheduleUpdated")
    assert (schedule.next_follow_up_due, schedule.basis) == (at + days(7), "cadence_B")


def test_a_next_contact_earlier_than_the_cadence_becomes_the_due_time() -> None:
    client = owned_client()
    at = START + days(1)

    follow_up(client, at, grade="C", next_contact_at=at + days(2))

    schedule = of_type(new_events(client), "ScheduleUpdated")
    assert (schedule.next_follow_up_due, schedule.basis) == (at + days(2), "consultant_request")


def test_a_next_contact_in_the_past_is_refused() -> None:
    client = owned_client()
    at = START + days(1)

    with pytest.raises(InvalidInput) as error:
        follow_up(client, at, next_contact_at=at - timedelta(minutes=1))

    assert error.value.field == "next_contact_at"
    assert new_events(client) == []
