"""Given/when/then on the Client aggregate (and its masked pool), no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from domain.client import Client
from domain.masked_pool import MaskedReportPool
from domain.policy import Policy
from tests.support import START
from tests.unit.aggregates import (
    TRACE,
    attribution_events,
    file_masked_report,
    file_report,
    hours,
    new_client,
    new_events,
    new_pool,
    replay,
    types,
    visit,
)

VISIT_FIRST = Policy(version=2, judge_rule="visit_first")
FORBIDDEN = Policy(version=5, masked_reports="forbidden")


def test_an_accepted_report_is_valid_until_filed_time_plus_validity() -> None:
    client = new_client()

    report = file_report(client, "A", START + hours(1))

    assert types(new_events(client)) == ["ClientRegistered", "ReportFiled", "ReportAccepted"]
    assert report.status == "accepted"
    assert report.valid_until == START + hours(1) + timedelta(days=3)
    assert report.policy_version == 0


def test_second_report_for_a_protected_client_is_rejected() -> None:
    # Given channel A reported the buyer
    client = new_client()
    file_report(client, "A", START)
    new_events(client)

    # When channel B reports the same buyer under report_first
    report = file_report(client, "B", START + hours(2))

    # Then B's report is recorded, and rejected without naming A
    events = new_events(client)
    assert types(events) == ["ReportFiled", "ReportRejected"]
    assert events[1].reason == "protected"
    assert "A" not in vars(events[1]).values()
    assert (report.status, report.reason, report.valid_until) == ("rejected", "protected", None)


def test_the_same_channel_reporting_the_same_buyer_again_is_a_duplicate() -> None:
    client = new_client()
    first = file_report(client, "A", START)

    again = file_report(client, "A", START + hours(1))

    assert (again.status, again.reason) == ("rejected", "duplicate")
    assert first.status == "accepted"
    assert len(client.reports) == 2


def test_under_visit_first_several_channels_hold_valid_reports_until_the_visit() -> None:
    client = new_client()

    reports = [file_report(client, p, START + hours(i), VISIT_FIRST) for i, p in enumerate("ABC")]

    assert [r.status for r in reports] == ["accepted"] * 3
    assert len(client.valid_claims(START + hours(3))) == 3


def test_under_visit_first_the_accompanying_channel_wins_and_the_others_are_closed() -> None:
    # Given A, B and C reported the buyer in that order
    client = new_client()
    a, b, c = (file_report(client, p, START + hours(i), VISIT_FIRST) for i, p in enumerate("ABC"))
    new_events(client)

    # When the buyer visits with B's agent
    at = START + hours(5)
    visit(client, at, partner_id="B", policy=VISIT_FIRST)

    # Then B's report is confirmed, A's and C's are closed, and B's channel owns the buyer
    events = attribution_events(client)
    assert types(events) == [
        "ClientVisited",
        "ReportConfirmed",
        "ReportClosed",
        "ReportClosed",
        "OwnershipAwarded",
    ]
    assert events[1].report_id == b.report_id
    assert {(e.report_id, e.reason) for e in events[2:4]} == {
        (a.report_id, "lost_to_accompanied_visit"),
        (c.report_id, "lost_to_accompanied_visit"),
    }
    awarded = events[-1]
    assert (awarded.partner_id, awarded.report_id, awarded.basis) == ("B", b.report_id, "report")
    assert awarded.consultant_id == "cons-1"
    assert awarded.since == at
    assert awarded.protected_until == at + timedelta(days=30)
    assert awarded.policy_version == 2
    assert [client.reports[r.report_id].status for r in (a, b, c)] == [
        "closed",
        "confirmed",
        "closed",
    ]


def test_under_visit_first_an_unaccompanied_visit_goes_to_the_earliest_report() -> None:
    client = new_client()
    a = file_report(client, "A", START, VISIT_FIRST)
    b = file_report(client, "B", START + hours(1), VISIT_FIRST)

    decision = visit(client, START + hours(2), policy=VISIT_FIRST)

    assert decision.winner is not None
    assert decision.winner.report_id == a.report_id
    assert client.owner is not None
    assert client.owner.partner_id == "A"
    assert client.reports[b.report_id].reason == "lost_to_earlier_report"


def test_a_walk_in_with_no_valid_report_is_owned_by_the_consultant_alone() -> None:
    client = new_client()
    new_events(client)
    at = START + hours(1)

    visit(client, at, consultant_id="cons-7", policy=Policy(version=3, protection="P10D"))

    events = attribution_events(client)
    assert types(events) == ["ClientVisited", "OwnershipAwarded"]
    awarded = events[-1]
    assert awarded.basis == "walk_in"
    assert (awarded.partner_id, awarded.report_id) == (None, None)
    assert awarded.consultant_id == "cons-7"
    assert awarded.protected_until == at + timedelta(days=10)
    assert awarded.policy_version == 3


def test_a_visit_of_a_protected_buyer_is_recorded_and_leaves_the_owner_unchanged() -> None:
    # Given A's channel owns the buyer
    client = new_client()
    file_report(client, "A", START)
    visit(client, START + hours(1))
    assert client.owner is not None
    owner_before = replace(client.owner)
    new_events(client)

    # When the buyer comes back with B's agent, who reported meanwhile under visit_first
    later = file_report(client, "B", START + hours(2), VISIT_FIRST)
    visit(client, START + hours(3), partner_id="B", consultant_id="cons-2", policy=VISIT_FIRST)

    # Then the visit is only recorded: the owner and the decision stay as they were
    assert types(attribution_events(client)) == ["ReportFiled", "ReportRejected", "ClientVisited"]
    assert later.reason == "protected"
    owner = client.owner
    assert owner is not None
    assert (owner.consultant_id, owner.partner_id, owner.report_id, owner.basis) == (
        owner_before.consultant_id,
        owner_before.partner_id,
        owner_before.report_id,
        owner_before.basis,
    )
    assert (owner.since, owner.decided_version) == (
        owner_before.since,
        owner_before.decided_version,
    )
    assert owner.protected_until >= owner_before.protected_until  # it may only be extended
    assert len(client.visits) == 2


def test_once_protection_has_expired_the_next_visit_awards_again() -> None:
    client = new_client()
    visit(client, START, consultant_id="cons-1", policy=Policy(protection="P1D"))
    at = START + timedelta(days=1)  # protection ends exactly now
    # (a window shorter than the day since the visit, or the report would be void)
    file_report(client, "B", at, Policy(recent_visit_window="PT12H"))
    new_events(client)

    visit(client, at + hours(1), consultant_id="cons-2")

    events = attribution_events(client)
    assert types(events)[-1] == "OwnershipAwarded"
    awarded = events[-1]
    assert (awarded.consultant_id, awarded.partner_id, awarded.basis) == ("cons-2", "B", "report")
    assert awarded.previous_consultant_id == "cons-1"


def test_an_expired_report_no_longer_counts() -> None:
    client = new_client()
    report = file_report(client, "A", START)
    expiry = START + timedelta(days=3)

    assert report.status_at(expiry - timedelta(seconds=1)) == "accepted"
    assert report.status_at(expiry) == "expired"
    # Another channel may report now, and a visit is a walk-in rather than A's.
    assert file_report(client, "B", expiry).status == "accepted"
    new_events(client)
    decision = visit(client, expiry + timedelta(days=3))
    assert decision.kind == "walk_in"
    assert client.owner is not None
    assert client.owner.basis == "walk_in"


def test_a_masked_report_wins_when_it_is_the_earliest() -> None:
    # Given A filed a masked report, then B a full one for a buyer fitting the pattern
    pool, client = new_pool(), new_client()
    masked = file_masked_report(pool, "A", START)
    full = file_report(client, "B", START + hours(1))
    assert full.status == "accepted"  # B cannot know about A's masked report
    new_events(pool)
    new_events(client)

    # When the buyer visits
    visit(client, START + hours(2), pool=pool)

    # Then A's masked report is brought over, confirmed, and wins
    events = attribution_events(client)
    assert types(events) == [
        "ClientVisited",
        "MaskedReportMatched",
        "ReportConfirmed",
        "ReportClosed",
        "OwnershipAwarded",
    ]
    assert events[1].report_id == masked.report_id
    assert events[1].pool_id == pool.id
    assert (events[3].report_id, events[3].reason) == (full.report_id, "lost_to_earlier_report")
    assert (events[-1].partner_id, events[-1].report_id) == ("A", masked.report_id)
    pool_events = new_events(pool)
    assert types(pool_events) == ["MaskedReportConsumed"]
    assert pool.reports[masked.report_id].status == "confirmed"
    assert pool.reports[masked.report_id].client_id == str(client.id)


def test_a_masked_report_is_refused_when_the_policy_forbids_masked_reports() -> None:
    pool = new_pool()
    new_events(pool)

    report = file_masked_report(pool, "A", START, FORBIDDEN)

    events = new_events(pool)
    assert types(events) == ["ReportFiled", "ReportRejected"]
    assert events[1].reason == "masked_not_allowed"
    assert events[1].policy_version == 5
    assert report.status == "rejected"
    assert pool.valid_claims(START) == []


def test_a_masked_report_is_consumed_at_most_once() -> None:
    # Given two buyers share the pattern 138****5678 and A filed one masked report
    pool = new_pool()
    masked = file_masked_report(pool, "A", START)
    first, second = new_client(), new_client()

    # When both buyers visit
    visit(first, START + hours(1), pool=pool)
    visit(second, START + hours(2), pool=pool)

    # Then only the first buyer gets A's report; the second is a walk-in
    assert first.owner is not None
    assert first.owner.report_id == masked.report_id
    assert second.owner is not None
    assert (second.owner.basis, second.owner.report_id) == ("walk_in", None)
    assert types(new_events(pool)).count("MaskedReportConsumed") == 1


def test_a_masked_report_that_lost_a_buyer_cannot_win_that_buyer_later() -> None:
    # Given A's masked report lost to B's accompanied visit under visit_first
    policy = Policy(version=1, judge_rule="visit_first", protection="P1D")
    pool, client = new_pool(), new_client()
    masked = file_masked_report(pool, "A", START, policy)
    file_report(client, "B", START + hours(1), policy)
    first = visit(client, START + hours(2), partner_id="B", policy=policy, pool=pool)
    assert first.winner is not None
    assert first.winner.partner_id == "B"

    # When the same buyer comes back after B's protection, within A's validity
    visit(client, START + hours(27), consultant_id="cons-2", policy=policy, pool=pool)

    # Then A's report, which already lost this buyer, must not win it now
    assert client.owner is not None
    assert client.owner.report_id != masked.report_id


def test_a_masked_report_filed_right_after_the_buyers_visit_never_wins_that_buyer() -> None:
    # Given the buyer walked in (protection of an hour only), and half a day later, with
    # nobody protecting them, channel A filed a masked report that fits them
    short = Policy(version=3, protection="PT1H")
    pool, client = new_pool(), new_client()
    visit(client, START, policy=short)
    masked = file_masked_report(pool, "A", START + hours(12), short)
    assert masked.status == "accepted"  # the pattern alone cannot tell who it is
    new_events(client)

    # When A brings the buyer the next day, inside the seven-day window
    decision = visit(client, START + hours(30), partner_id="A", policy=short, pool=pool)

    # Then the report is passed over as recent_visit: the walk-in beats a later report
    assert decision.kind == "walk_in"
    events = [e for e in new_events(client) if type(e).__name__ != "ScheduleUpdated"]
    assert types(events) == ["ClientVisited", "MaskedReportPassedOver", "OwnershipAwarded"]
    assert (events[1].report_id, events[1].reason) == (masked.report_id, "recent_visit")
    assert client.owner is not None and client.owner.report_id is None
    assert masked.report_id in client.passed_over
    assert pool.reports[masked.report_id].status == "accepted"  # open for other buyers


def test_a_masked_report_filed_after_the_window_counts_again() -> None:
    short = Policy(version=3, protection="PT1H", recent_visit_window="PT6H")
    pool, client = new_pool(), new_client()
    visit(client, START, policy=short)
    masked = file_masked_report(pool, "A", START + hours(6), short)

    decision = visit(client, START + hours(30), partner_id="A", policy=short, pool=pool)

    assert decision.winner is not None and decision.winner.report_id == masked.report_id


def test_a_confirmed_report_cannot_win_a_later_visit() -> None:
    client = new_client()
    report = file_report(client, "A", START, Policy(protection="PT1H"))
    visit(client, START + hours(1), policy=Policy(protection="PT1H"))

    decision = visit(client, START + hours(3))

    assert client.reports[report.report_id].status == "confirmed"
    assert decision.kind == "walk_in"


def test_ownership_at_an_instant_is_none_then_reported_then_owned() -> None:
    client = new_client()
    assert client.ownership_at(START)["status"] == "none"

    report = file_report(client, "A", START)
    reported = client.ownership_at(START + hours(1))
    assert (reported["status"], reported["partner_id"]) == ("reported", "A")
    assert reported["report_id"] == report.report_id
    assert reported["consultant_id"] is None

    visit(client, START + hours(2))
    owned = client.ownership_at(START + hours(2))
    assert (owned["status"], owned["consultant_id"], owned["basis"]) == (
        "owned",
        "cons-1",
        "report",
    )
    assert owned["protected"] is True
    assert client.ownership_at(START + timedelta(days=40))["protected"] is False


def test_the_stream_alone_replays_to_the_same_decisions() -> None:
    client = new_client()
    file_report(client, "A", START, VISIT_FIRST)
    file_report(client, "B", START + hours(1), VISIT_FIRST)
    visit(client, START + hours(2), partner_id="B", policy=VISIT_FIRST)

    replayed = replay(new_events(client))

    assert isinstance(replayed, Client)
    assert replayed.owner == client.owner
    assert replayed.reports == client.reports
    assert replayed.visits == client.visits


def test_erasing_personal_data_is_recorded_once() -> None:
    client = new_client()
    new_events(client)

    client.erase(START + hours(1), TRACE)
    client.erase(START + hours(2), TRACE)

    events = new_events(client)
    assert types(events) == ["PersonalDataErased"]
    assert events[0].actor == TRACE["actor"]
    assert client.erased


def test_an_erased_buyer_comes_back_once_behind_a_boundary() -> None:
    """A return ends the erasure at the version before it: the new number token is the
    buyer's, and only events up to the return read erased; replay agrees."""
    client = new_client()
    client.come_back("v1:never", START, TRACE)  # not erased: nothing to end
    client.erase(START + hours(1), TRACE)
    erased_at = client.version
    before = new_events(client)

    client.come_back("v1:fresh", START + hours(2), TRACE)
    client.come_back("v1:again", START + hours(3), TRACE)

    after = new_events(client)
    assert types(before) == ["ClientRegistered", "PersonalDataErased"]
    assert types(after) == ["BuyerReturned"]
    assert not client.erased and client.pii == "v1:fresh"
    assert client.erased_through == erased_at
    assert client.text_erased(erased_at) and not client.text_erased(erased_at + 1)
    replayed = replay(before + after)
    assert (replayed.erased, replayed.erased_through, replayed.pii) == (
        False,
        erased_at,
        "v1:fresh",
    )


def test_every_event_of_a_report_carries_actor_and_correlation_id() -> None:
    client = new_client()
    file_report(client, "A", START)
    visit(client, START + hours(1))

    for event in new_events(client):
        assert event.actor == TRACE["actor"]
        assert event.correlation_id == TRACE["correlation_id"]


def test_a_pool_keeps_masked_reports_per_channel() -> None:
    pool = new_pool()

    first = file_masked_report(pool, "A", START)
    other = file_masked_report(pool, "B", START + hours(1))
    again = file_masked_report(pool, "A", START + hours(2))

    assert isinstance(pool, MaskedReportPool)
    assert (first.status, other.status) == ("accepted", "accepted")
    assert (again.status, again.reason) == ("rejected", "duplicate")
    assert [c.partner_id for c in pool.valid_claims(START + hours(3))] == ["A", "B"]
