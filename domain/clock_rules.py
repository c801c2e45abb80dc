"""The protection clock and follow-up cadence as pure functions of the policy.

Sources (domain.md): a base protection period, extended by N days on an effective
follow-up only if that lands later, never past a hard maximum; first follow-up within
24 h of assignment, then A every 3 days, B weekly, C monthly.
"""

from __future__ import annotations

from datetime import datetime

from domain.policy import Policy
from domain.values import parse_duration

# A buyer nobody has graded yet is followed up at the B cadence: weekly is the middle
# road between losing a hot buyer and pestering a cold one.
UNGRADED_CADENCE = "B"


def extended_protection(
    policy: Policy, since: datetime, current_until: datetime, now: datetime
) -> datetime | None:
    """The new protection end after an effective contact, or None if it does not move.

    It moves only forward, to at least ``now + protection_extension``, and never past
    ``since + protection_max``.
    """
    target = max(current_until, now + policy.delta("protection_extension"))
    target = min(target, since + policy.delta("protection_max"))
    return target if target > current_until else None


def first_follow_up_due(policy: Policy, assigned_at: datetime) -> datetime:
    return assigned_at + policy.delta("first_follow_up")


def next_follow_up_due(
    policy: Policy, grade: str | None, at: datetime, requested: datetime | None
) -> tuple[datetime, str]:
    """Due time and its basis after a follow-up: the grade's cadence, or the
    consultant's own ``next_contact_at`` when that is earlier."""
    cadence_grade = grade or UNGRADED_CADENCE
    cadence = policy.cadence_delta(cadence_grade)
    assert cadence is not None
    due, basis = at + cadence, f"cadence_{cadence_grade}"
    if requested is not None and requested < due:
        due, basis = requested, "consultant_request"
    return due, basis


def inactive_after(policy: Policy, last_activity: datetime) -> datetime:
    return last_activity + policy.delta("inactivity_release")


def escalates_at(policy: Policy, grade: str | None, due: datetime) -> datetime:
    """When an overdue follow-up goes to the supervisor: the grade's ``escalate_after``
    past its due time (ungraded buyers escalate as they are followed up, at B)."""
    key = grade or UNGRADED_CADENCE
    return due + parse_duration(policy.escalate_after[key], f"escalate_after.{key}")


def dormant_from(policy: Policy, last_activity: datetime) -> datetime:
    """When a buyer with no activity since ``last_activity`` becomes 待激活."""
    return last_activity + policy.delta("dormant_after")
