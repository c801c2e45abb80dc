"""The 判客 rules as pure functions: given claims and an owner, when filing or visiting."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from domain.attribution import (
    Claim,
    OwnerView,
    decide_filing,
    decide_masked_filing,
    decide_visit,
)
from domain.policy import Policy
from tests.support import START

REPORT_FIRST = Policy(version=1, judge_rule="report_first")
VISIT_FIRST = Policy(version=2, judge_rule="visit_first")
MASKED_FORBIDDEN = Policy(version=3, masked_reports="forbidden")
NOW = START + timedelta(hours=10)


def claim(
    report_id: str,
    partner_id: str,
    filed_hours_ago: float,
    *,
    masked: bool = False,
    sequence: int = 1,
) -> Claim:
    filed_at = NOW - timedelta(hours=filed_hours_ago)
    return Claim(
        report_id=report_id,
        partner_id=partner_id,
        filed_at=filed_at,
        valid_until=filed_at + timedelta(days=3),
        masked=masked,
        sequence=sequence,
    )


def owner(partner_id: str | None, protected_until: datetime) -> OwnerView:
    return OwnerView("cons-1", partner_id, protected_until)


# ------------------------------------------------------------------ filing


def test_a_first_report_for_an_unknown_buyer_is_accepted() -> None:
    decision = decide_filing(REPORT_FIRST, NOW, "A", None, [], None)

    assert decision.accepted
    assert decision.reason is None


def test_second_report_for_a_reported_client_from_another_channel_is_rejected_protected() -> None:
    decision = decide_filing(REPORT_FIRST, NOW, "B", None, [claim("r1", "A", 2)], None)

    assert not decision.accepted
    assert decision.reason == "protected"


def test_the_same_channel_reporting_again_is_a_duplicate() -> None:
    for policy in (REPORT_FIRST, VISIT_FIRST):
        decision = decide_filing(policy, NOW, "A", None, [claim("r1", "A", 2)], None)

        assert (decision.accepted, decision.reason) == (False, "duplicate")


def test_under_visit_first_several_channels_may_hold_valid_reports() -> None:
    decision = decide_filing(
        VISIT_FIRST, NOW, "C", None, [claim("r1", "A", 3), claim("r2", "B", 2)], None
    )

    assert decision.accepted


def test_second_report_for_a_protected_client_is_rejected() -> None:
    protected = owner("A", NOW + timedelta(days=1))

    for policy in (REPORT_FIRST, VISIT_FIRST):
        assert decide_filing(policy, NOW, "B", protected, [], None).reason == "protected"
        assert decide_filing(policy, NOW, "A", protected, [], None).reason == "duplicate"


def test_a_buyer_owned_by_walk_in_is_protected_from_every_channel() -> None:
    walk_in_owner = owner(None, NOW + timedelta(days=1))

    decision = decide_filing(VISIT_FIRST, NOW, "A", walk_in_owner, [], None)

    assert (decision.accepted, decision.reason) == (False, "protected")


def test_a_report_is_accepted_once_protection_has_ended() -> None:
    lapsed = owner("A", NOW)  # protection ends at this very instant

    decision = decide_filing(REPORT_FIRST, NOW, "B", lapsed, [], None)

    assert decision.accepted


def test_a_buyer_seen_at_the_office_within_the_window_cannot_be_reported() -> None:
    # Given the buyer visited six days ago and nobody protects them any more
    lapsed = owner(None, NOW - timedelta(hours=1))
    seen = NOW - timedelta(days=6)

    # When a channel reports them (the default window is seven days)
    for policy in (REPORT_FIRST, VISIT_FIRST):
        decision = decide_filing(policy, NOW, "B", lapsed, [], seen)

        # Then the report is void: the walk-in beats a later report (防截客)
        assert (decision.accepted, decision.reason) == (False, "recent_visit")


def test_the_recent_visit_window_ends_exactly_at_its_length_and_is_a_policy_field() -> None:
    seen = NOW - timedelta(days=7)
    assert decide_filing(REPORT_FIRST, NOW, "B", None, [], seen).accepted
    assert not decide_filing(REPORT_FIRST, NOW - timedelta(seconds=1), "B", None, [], seen).accepted
    short = replace(REPORT_FIRST, recent_visit_window="PT12H")
    assert decide_filing(short, NOW, "B", None, [], NOW - timedelta(hours=12)).accepted
    assert not decide_filing(short, NOW, "B", None, [], NOW - timedelta(hours=11)).accepted


def test_a_running_protection_still_answers_first_so_the_owning_channel_hears_duplicate() -> None:
    protected = owner("A", NOW + timedelta(days=1))
    seen = NOW - timedelta(days=1)

    assert decide_filing(REPORT_FIRST, NOW, "A", protected, [], seen).reason == "duplicate"
    assert decide_filing(REPORT_FIRST, NOW, "B", protected, [], seen).reason == "protected"


def test_masked_reports_are_refused_when_the_policy_forbids_them() -> None:
    decision = decide_masked_filing(MASKED_FORBIDDEN, NOW, "A", [])

    assert (decision.accepted, decision.reason) == (False, "masked_not_allowed")


def test_masked_reports_on_one_pattern_collide_only_with_the_same_channel() -> None:
    pool = [claim("m1", "A", 1, masked=True)]

    assert decide_masked_filing(REPORT_FIRST, NOW, "B", pool).accepted
    assert decide_masked_filing(REPORT_FIRST, NOW, "A", pool).reason == "duplicate"


# ------------------------------------------------------------------ visits


def test_a_visit_with_no_valid_report_is_a_walk_in() -> None:
    decision = decide_visit(REPORT_FIRST, NOW, None, [], "A")

    assert decision.kind == "walk_in"
    assert decision.winner is None
    assert decision.losers == ()


def test_a_visit_of_a_protected_buyer_leaves_the_owner_alone() -> None:
    decision = decide_visit(
        REPORT_FIRST, NOW, owner("A", NOW + timedelta(hours=1)), [claim("r2", "B", 1)], "B"
    )

    assert decision.kind == "protected"
    assert decision.winner is None
    assert decision.losers == ()


def test_an_expired_protection_lets_the_next_visit_award_again() -> None:
    decision = decide_visit(REPORT_FIRST, NOW, owner("A", NOW), [claim("r2", "B", 1)], None)

    assert decision.kind == "report"
    assert decision.winner is not None
    assert decision.winner.report_id == "r2"


def test_report_first_gives_the_buyer_to_the_earliest_report_whoever_accompanies() -> None:
    early, late = claim("r1", "A", 5), claim("r2", "B", 1)

    decision = decide_visit(REPORT_FIRST, NOW, None, [late, early], "B")

    assert decision.winner == early
    assert decision.losers == ((late, "lost_to_earlier_report"),)


def test_visit_first_gives_the_buyer_to_the_accompanying_channel() -> None:
    early, late = claim("r1", "A", 5), claim("r2", "B", 1)

    decision = decide_visit(VISIT_FIRST, NOW, None, [early, late], "B")

    assert decision.winner == late
    assert decision.losers == ((early, "lost_to_accompanied_visit"),)


def test_an_unaccompanied_visit_first_visit_falls_back_to_the_earliest_report() -> None:
    early, late = claim("r1", "A", 5), claim("r2", "B", 1)

    decision = decide_visit(VISIT_FIRST, NOW, None, [late, early], None)

    assert decision.winner == early
    assert decision.losers == ((late, "lost_to_earlier_report"),)


def test_an_accompanying_channel_without_a_valid_report_does_not_win() -> None:
    early = claim("r1", "A", 5)

    decision = decide_visit(VISIT_FIRST, NOW, None, [early], "C")

    assert decision.winner == early


def test_a_masked_report_wins_when_it_is_the_earliest() -> None:
    masked, full = claim("m1", "A", 5, masked=True), claim("r2", "B", 1)

    decision = decide_visit(REPORT_FIRST, NOW, None, [full, masked], None)

    assert decision.winner == masked
    assert decision.losers == ((full, "lost_to_earlier_report"),)


def test_at_the_same_instant_a_full_report_beats_a_masked_one() -> None:
    masked = claim("m1", "A", 2, masked=True, sequence=1)
    full = claim("r2", "B", 2, sequence=9)

    decision = decide_visit(REPORT_FIRST, NOW, None, [masked, full], None)

    assert decision.winner == full


def test_a_channels_own_later_report_is_closed_as_superseded() -> None:
    first, again, other = claim("r1", "A", 5), claim("r2", "A", 3), claim("r3", "B", 1)

    decision = decide_visit(VISIT_FIRST, NOW, None, [other, again, first], None)

    assert decision.winner == first
    assert dict((c.report_id, reason) for c, reason in decision.losers) == {
        "r2": "superseded_by_own_report",
        "r3": "lost_to_earlier_report",
    }


def test_every_valid_report_but_the_winner_loses_exactly_once() -> None:
    claims = [claim(f"r{i}", f"P{i}", i) for i in range(1, 6)]

    decision = decide_visit(VISIT_FIRST, NOW, None, claims, "P3")

    assert decision.winner is not None
    assert decision.winner.report_id == "r3"
    lost = [c.report_id for c, _ in decision.losers]
    assert sorted(lost) == ["r1", "r2", "r4", "r5"]
