"""Given/when/then for the Client after the visit: who may act, grades, losses, the pool,
transfers, deadlines (expiry, inactivity) and disputes. No database."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from domain.attribution import FilingDecision
from domain.client import Client
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.values import Actor
from tests.support import START
from tests.unit.lifecycle_support import (
    AUDITOR,
    MANAGER,
    OTHER,
    OWNER,
    POLICY,
    SUPERVISOR,
    TRACE,
    days,
    follow_up,
    hours,
    new_client,
    new_events,
    of_type,
    owned_client,
    release_by_loss,
    replay,
    types,
    visit,
)

TO_MANAGER = replace(POLICY, version=5, on_expiry="manager", expiry_manager_id="mgr-1")


def pooled_client() -> Client:
    client = owned_client()
    release_by_loss(client, START + days(1))
    return client


# ------------------------------------------------------------------ who may act


def test_another_consultant_may_not_log_a_follow_up_on_someone_elses_buyer() -> None:
    client = owned_client()

    with pytest.raises(Forbidden):
        follow_up(client, START + hours(1), actor=OTHER)

    assert new_events(client) == []


@pytest.mark.parametrize("actor", [SUPERVISOR, MANAGER], ids=lambda a: a.role)
def test_a_supervisor_or_manager_may_log_for_the_owner(actor: Actor) -> None:
    client = owned_client()

    follow_up(client, START + hours(1), actor=actor)

    logged = of_type(new_events(client), "FollowUpLogged")
    assert logged.consultant_id == OWNER.id  # the follow-up counts for the owner
    assert logged.actor == actor.as_dict()


@pytest.mark.parametrize(
    "actor", [AUDITOR, Actor("agent-a", "channel_agent")], ids=lambda a: a.role
)
def test_readers_and_channels_may_not_log_follow_ups(actor: Actor) -> None:
    client = owned_client()
    with pytest.raises(Forbidden):
        follow_up(client, START + hours(1), actor=actor)


def test_nobody_logs_a_follow_up_on_a_buyer_without_an_owner() -> None:
    client = new_client()

    with pytest.raises(Conflict) as error:
        follow_up(client, START, actor=SUPERVISOR)

    assert error.value.code == "not_owned"


def test_an_unknown_follow_up_method_is_a_field_error() -> None:
    client = owned_client()
    with pytest.raises(InvalidInput) as error:
        follow_up(client, START + hours(1), method="carrier_pigeon")
    assert error.value.field == "method"


def test_an_invalid_grade_on_a_follow_up_is_refused_before_anything_is_recorded() -> None:
    client = owned_client()

    with pytest.raises(InvalidInput):
        follow_up(client, START + hours(1), grade="D")

    assert new_events(client) == []
    assert client.follow_ups == 0


# ---------------------------------------------------------------------- grades


def test_the_owner_changes_the_grade_and_the_cadence_restarts_from_the_last_contact() -> None:
    # Given a B-paced buyer last contacted on day 1
    client = owned_client()
    follow_up(client, START + days(1))
    new_events(client)

    # When the owner grades them A on day 2, giving a reason
    client.change_grade(OWNER, "A", "asked for a second viewing", POLICY, START + days(2), TRACE)

    # Then the grade is recorded with the previous one, and A's 3-day cadence counts
    # from the last contact
    events = new_events(client)
    assert types(events) == ["GradeChanged", "ScheduleUpdated"]
    changed = of_type(events, "GradeChanged")
    assert (changed.grade, changed.previous_grade) == ("A", None)
    assert changed.reason == "asked for a second viewing"
    schedule = of_type(events, "ScheduleUpdated")
    assert (schedule.next_follow_up_due, schedule.basis) == (START + days(4), "cadence_A")
    assert client.grade == "A"


def test_a_grade_whose_cadence_is_already_overdue_is_due_now() -> None:
    client = owned_client()
    follow_up(client, START + days(1))
    new_events(client)

    client.change_grade(OWNER, "A", "hot", POLICY, START + days(6), TRACE)

    schedule = of_type(new_events(client), "ScheduleUpdated")
    assert schedule.next_follow_up_due == START + days(6)


def test_setting_the_same_grade_again_records_nothing() -> None:
    client = owned_client()
    client.change_grade(OWNER, "B", "first grading", POLICY, START + hours(1), TRACE)
    new_events(client)

    client.change_grade(OWNER, "B", "again", POLICY, START + hours(2), TRACE)

    assert new_events(client) == []


def test_an_unknown_grade_is_refused_and_another_consultant_may_not_grade() -> None:
    client = owned_client()
    with pytest.raises(InvalidInput):
        client.change_grade(OWNER, "Z", "?", POLICY, START, TRACE)
    with pytest.raises(Forbidden):
        client.change_grade(OTHER, "A", "mine now", POLICY, START, TRACE)


def test_the_profile_is_replaced_by_the_owner_only() -> None:
    client = owned_client()
    profile = {
        "budget_min": 3_000_000,
        "budget_max": 4_000_000,
        "layouts": [3],
        "focus": ["school"],
    }

    client.update_profile(OWNER, profile, START + hours(1), TRACE)

    assert of_type(new_events(client), "ProfileUpdated").profile == profile
    assert client.profile == profile
    with pytest.raises(Forbidden):
        client.update_profile(OTHER, {}, START + hours(2), TRACE)


# ---------------------------------------------------------------------- losses


def test_an_approved_loss_releases_the_buyer_to_the_pool_with_reason_lost() -> None:
    # Given an owned buyer and a loss request (战败申请)
    client = owned_client()
    client.request_loss(OWNER, "loss-1", "bought_elsewhere", "sealed", START + days(1), TRACE)
    requested = new_events(client)
    assert types(requested) == ["LossRequested"]
    assert client.pending_loss is not None and client.owner is not None

    # When a supervisor approves
    client.approve_loss("loss-1", "confirmed by phone", POLICY, START + days(2), TRACE)

    # Then the loss and the release are recorded and the buyer is in the pool
    events = new_events(client)
    assert types(events) == ["LossApproved", "ReleasedToPool"]
    assert of_type(events, "LossApproved").loss_reason == "bought_elsewhere"
    released = of_type(events, "ReleasedToPool")
    assert (released.reason, released.previous_consultant_id) == ("lost", OWNER.id)
    assert released.policy_version == POLICY.version
    assert client.status == "pool" and client.owner is None
    assert client.lost_reason == "bought_elsewhere"
    assert client.ownership_at(START + days(2))["status"] == "pool"
    assert client.ownership_at(START + days(2))["basis"] == "lost"


def test_a_rejected_loss_keeps_the_owner_and_a_new_request_may_follow() -> None:
    client = owned_client()
    client.request_loss(OWNER, "loss-1", "price", "sealed", START + days(1), TRACE)

    client.reject_loss("loss-1", "call them again", POLICY, START + days(2), TRACE)

    events = new_events(client)
    assert types(events) == ["LossRequested", "LossRejected"]
    assert client.owner is not None and client.owner.consultant_id == OWNER.id
    assert client.loss_requests["loss-1"].status == "rejected"
    client.request_loss(OWNER, "loss-2", "unreachable", "sealed", START + days(3), TRACE)
    assert client.pending_loss is not None and client.pending_loss.request_id == "loss-2"


def test_only_one_loss_request_may_wait_at_a_time() -> None:
    client = owned_client()
    client.request_loss(OWNER, "loss-1", "price", "sealed", START + days(1), TRACE)

    with pytest.raises(Conflict) as error:
        client.request_loss(OWNER, "loss-2", "location", "sealed", START + days(1), TRACE)

    assert error.value.code == "loss_pending"


def test_a_loss_reason_must_come_from_the_fixed_list() -> None:
    client = owned_client()
    with pytest.raises(InvalidInput) as error:
        client.request_loss(OWNER, "loss-1", "bad_feng_shui", "sealed", START, TRACE)
    assert error.value.field == "reason"


def test_another_consultant_may_not_ask_to_lose_someone_elses_buyer() -> None:
    client = owned_client()
    with pytest.raises(Forbidden):
        client.request_loss(OTHER, "loss-1", "price", "sealed", START, TRACE)


def test_a_decided_loss_cannot_be_decided_again_and_an_unknown_one_is_not_found() -> None:
    client = owned_client()
    client.request_loss(OWNER, "loss-1", "price", "sealed", START, TRACE)
    client.reject_loss("loss-1", "no", POLICY, START, TRACE)

    with pytest.raises(Conflict) as error:
        client.approve_loss("loss-1", "yes after all", POLICY, START, TRACE)
    assert error.value.code == "decided"
    with pytest.raises(NotFound):
        client.approve_loss("nope", "", POLICY, START, TRACE)


# ------------------------------------------------------------------------ pool


def test_a_buyer_not_in_the_pool_cannot_be_claimed() -> None:
    client = owned_client()

    with pytest.raises(Conflict) as error:
        client.claim("claim-1", "cons-2", None, POLICY, START + days(1), TRACE)

    assert error.value.code == "not_in_pool"


def test_a_claim_from_the_pool_starts_a_fresh_protection_period() -> None:
    # Given a buyer released on day 1
    client = pooled_client()
    at = START + days(5)

    # When another consultant claims them on day 5
    client.claim("claim-1", "cons-2", None, POLICY, at, TRACE)

    # Then they own the buyer with a new period from now, and a new schedule
    events = new_events(client)
    assert types(events) == ["ClaimedFromPool", "ScheduleUpdated"]
    claimed = of_type(events, "ClaimedFromPool")
    assert (claimed.since, claimed.protected_until) == (at, at + days(10))
    assert client.owner is not None
    assert (client.owner.consultant_id, client.owner.basis) == ("cons-2", "pool_claim")
    assert client.owner.decided_version == claimed.originator_version
    assert client.status == "owned" and not client.in_pool
    assert of_type(events, "ScheduleUpdated").next_follow_up_due == at + hours(24)


def test_a_claimed_buyer_cannot_be_claimed_again() -> None:
    client = pooled_client()
    client.claim("claim-1", "cons-2", None, POLICY, START + days(5), TRACE)

    with pytest.raises(Conflict) as error:
        client.claim("claim-2", "cons-3", None, POLICY, START + days(5), TRACE)

    assert error.value.code == "not_in_pool"


def test_with_approval_a_claim_waits_and_blocks_other_claims_until_decided() -> None:
    client = pooled_client()

    client.request_claim("claim-1", "cons-2", START + days(5), TRACE)

    assert types(new_events(client)) == ["ClaimRequested"]
    assert client.in_pool and client.pending_claim is not None
    with pytest.raises(Conflict) as error:
        client.request_claim("claim-2", "cons-3", START + days(5), TRACE)
    assert error.value.code == "claim_pending"
    with pytest.raises(Conflict):
        client.claim("claim-3", "cons-3", None, POLICY, START + days(5), TRACE)


def test_an_approved_claim_names_the_approver_and_a_rejected_one_frees_the_buyer() -> None:
    approved = pooled_client()
    approved.request_claim("claim-1", "cons-2", START + days(5), TRACE)
    approved.claim("claim-1", "cons-2", "sup-1", POLICY, START + days(6), TRACE)
    claimed = of_type(new_events(approved), "ClaimedFromPool")
    assert claimed.approved_by == "sup-1"
    assert approved.claims["claim-1"].status == "approved"

    rejected = pooled_client()
    rejected.request_claim("claim-1", "cons-2", START + days(5), TRACE)
    rejected.reject_claim("claim-1", "too many clients", START + days(6), TRACE)
    assert types(new_events(rejected))[-1] == "ClaimRejected"
    assert rejected.pending_claim is None and rejected.in_pool
    with pytest.raises(Conflict) as error:
        rejected.reject_claim("claim-1", "again", START + days(6), TRACE)
    assert error.value.code == "decided"


# ------------------------------------------------------------------- transfers


def test_a_transfer_gives_the_new_owner_a_fresh_period_beyond_the_old_cap() -> None:
    # Given an owner near the 20-day hard cap
    client = owned_client()
    at = START + days(18)

    # When a manager transfers the buyer
    client.transfer(
        to="cons-2", basis="transfer", reason="rebalancing", policy=POLICY, at=at, trace=TRACE
    )

    # Then the new owner starts at once with the full base period, not the old cap
    events = new_events(client)
    assert types(events) == ["OwnershipTransferred", "ScheduleUpdated"]
    moved = of_type(events, "OwnershipTransferred")
    assert (moved.previous_consultant_id, moved.consultant_id) == (OWNER.id, "cons-2")
    assert (moved.since, moved.protected_until) == (at, at + days(10))
    assert client.owner is not None and client.owner.protected_until > START + days(20)


def test_a_transfer_keeps_the_channel_attribution() -> None:
    client = owned_client(partner_id="partner-a")
    client.transfer(to="cons-2", basis="transfer", reason="r", policy=POLICY, at=START, trace=TRACE)
    assert client.owner is not None and client.owner.partner_id == "partner-a"


def test_a_transfer_to_the_current_owner_is_a_conflict() -> None:
    client = owned_client()
    with pytest.raises(Conflict) as error:
        client.transfer(
            to=OWNER.id, basis="transfer", reason="r", policy=POLICY, at=START, trace=TRACE
        )
    assert error.value.code == "already_owner"


def test_a_departure_moves_the_buyer_to_the_successor_or_the_pool_once() -> None:
    to_successor = owned_client()
    assert to_successor.depart(OWNER.id, "cons-2", POLICY, START + days(1), TRACE) is True
    assert of_type(new_events(to_successor), "OwnershipTransferred").basis == "departure"
    assert to_successor.depart(OWNER.id, "cons-2", POLICY, START + days(1), TRACE) is False

    to_pool = owned_client()
    assert to_pool.depart(OWNER.id, None, POLICY, START + days(1), TRACE) is True
    assert of_type(new_events(to_pool), "ReleasedToPool").reason == "departure"


# ------------------------------------------------------------- protection expiry


def test_protection_expiry_is_a_no_op_before_it_is_due() -> None:
    client = owned_client()
    epoch = client.owner.decided_version if client.owner else None

    acted = client.expire_protection(epoch, POLICY, START + days(10) - timedelta(seconds=1), TRACE)

    assert acted is False and new_events(client) == []


def test_protection_expiry_when_due_releases_the_buyer_to_the_pool() -> None:
    client = owned_client()
    assert client.owner is not None
    epoch = client.owner.decided_version

    acted = client.expire_protection(epoch, POLICY, START + days(10), TRACE)

    events = new_events(client)
    assert acted is True
    assert types(events) == ["ProtectionExpired", "ReleasedToPool"]
    assert of_type(events, "ProtectionExpired").protected_until == START + days(10)
    assert of_type(events, "ReleasedToPool").reason == "expired"
    assert client.status == "pool"
    assert client.expire_protection(epoch, POLICY, START + days(11), TRACE) is False


def test_protection_expiry_for_an_older_ownership_is_a_no_op() -> None:
    # Given an owner whose protection ran out, and then a newer ownership (a transfer)
    client = owned_client()
    assert client.owner is not None
    old_epoch = client.owner.decided_version
    client.transfer(
        to="cons-2", basis="transfer", reason="r", policy=POLICY, at=START + days(1), trace=TRACE
    )
    new_events(client)

    # When a stale deadline for the old ownership fires, even after the new one is due
    acted = client.expire_protection(old_epoch, POLICY, START + days(30), TRACE)

    # Then nothing happens: that ownership is gone
    assert acted is False and new_events(client) == []
    assert client.owner is not None and client.owner.consultant_id == "cons-2"


def test_protection_expiry_after_an_extension_is_a_no_op_at_the_old_deadline() -> None:
    client = owned_client()
    assert client.owner is not None
    epoch = client.owner.decided_version
    follow_up(client, START + days(9))  # extends to day 12
    new_events(client)

    assert client.expire_protection(epoch, POLICY, START + days(10), TRACE) is False
    assert new_events(client) == []
    assert client.expire_protection(epoch, POLICY, START + days(12), TRACE) is True


def test_with_on_expiry_manager_an_expired_buyer_goes_to_the_project_manager() -> None:
    # Given a project whose expired buyers go to manager mgr-1
    client = owned_client(policy=TO_MANAGER)
    assert client.owner is not None

    # When protection runs out
    client.expire_protection(client.owner.decided_version, TO_MANAGER, START + days(10), TRACE)

    # Then the manager owns the buyer with a fresh period
    events = new_events(client)
    assert types(events) == ["ProtectionExpired", "OwnershipTransferred", "ScheduleUpdated"]
    moved = of_type(events, "OwnershipTransferred")
    assert (moved.consultant_id, moved.basis, moved.reason) == ("mgr-1", "expiry", "expired")
    assert moved.policy_version == TO_MANAGER.version
    assert client.owner is not None and client.owner.consultant_id == "mgr-1"

    # And when the manager's own period runs out, the buyer goes to the pool
    epoch = client.owner.decided_version
    client.expire_protection(epoch, TO_MANAGER, START + days(20), TRACE)
    assert of_type(new_events(client), "ReleasedToPool").reason == "expired"


# -------------------------------------------------------------------- inactivity


def test_inactivity_releases_the_buyer_once_due() -> None:
    client = owned_client()
    assert client.owner is not None
    epoch = client.owner.decided_version

    assert client.release_inactive(epoch, POLICY, START + days(7) - hours(1), TRACE) is False
    assert client.release_inactive(epoch, POLICY, START + days(7), TRACE) is True

    events = new_events(client)
    assert types(events) == ["ReleasedToPool"]
    assert events[0].reason == "inactive"
    assert client.status == "pool"


def test_an_effective_follow_up_postpones_inactivity_and_a_non_effective_one_does_not() -> None:
    client = owned_client()
    assert client.owner is not None
    epoch = client.owner.decided_version
    follow_up(client, START + days(5), effective=False)
    assert client.inactive_after == START + days(7)
    follow_up(client, START + days(6), effective=True)
    assert client.inactive_after == START + days(13)
    new_events(client)

    assert client.release_inactive(epoch, POLICY, START + days(8), TRACE) is False
    assert new_events(client) == []


def test_inactivity_of_an_older_ownership_is_a_no_op() -> None:
    client = owned_client()
    assert client.owner is not None
    old_epoch = client.owner.decided_version
    client.transfer(
        to="cons-2", basis="transfer", reason="r", policy=POLICY, at=START + days(1), trace=TRACE
    )

    assert client.release_inactive(old_epoch, POLICY, START + days(9), TRACE) is False


def test_inactivity_with_on_expiry_manager_transfers_to_the_manager() -> None:
    client = owned_client(policy=TO_MANAGER)
    assert client.owner is not None

    client.release_inactive(client.owner.decided_version, TO_MANAGER, START + days(7), TRACE)

    moved = of_type(new_events(client), "OwnershipTransferred")
    assert (moved.consultant_id, moved.basis, moved.reason) == ("mgr-1", "expiry", "inactive")


# ---------------------------------------------------------------------- disputes


def open_dispute(
    client: Client,
    claimant: str = "cons-2",
    *,
    kind: str = "consultant",
    report_id: str | None = None,
    evidence: list[int] | None = None,
    at_day: float = 1,
) -> str:
    dispute_id = str(uuid.uuid4())
    client.open_dispute(
        dispute_id=dispute_id,
        claimant_kind=kind,
        claimant_id=claimant,
        report_id=report_id,
        reason="I received this buyer first",
        evidence_versions=evidence if evidence is not None else [1],
        at=START + days(at_day),
        trace=TRACE,
    )
    return dispute_id


def rule(client: Client, dispute_id: str, outcome: str, at_day: float = 2) -> None:
    client.rule_dispute(
        dispute_id=dispute_id,
        outcome=outcome,
        reason="the visit log shows it",
        evidence_versions=[1, 2],
        policy=POLICY,
        at=START + days(at_day),
        trace={"actor": MANAGER.as_dict(), "correlation_id": "req-ruling"},
    )


def test_a_dispute_records_the_claim_the_evidence_and_the_owner_at_opening() -> None:
    client = owned_client()

    dispute_id = open_dispute(client, evidence=[1, 2])

    opened = of_type(new_events(client), "DisputeOpened")
    assert (opened.claimant_id, opened.claimant_kind) == ("cons-2", "consultant")
    assert opened.evidence_versions == [1, 2]
    assert opened.owner_at_opening["consultant_id"] == OWNER.id
    assert client.dispute(dispute_id).status == "open"


@pytest.mark.parametrize("bad", [[0], [99], [1, -1]])
def test_evidence_must_name_events_of_this_client(bad: list[int]) -> None:
    client = owned_client()
    with pytest.raises(InvalidInput) as error:
        open_dispute(client, evidence=bad)
    assert error.value.field == "evidence_versions"


def test_a_claimant_has_one_open_dispute_per_buyer_and_a_report_must_be_this_buyers() -> None:
    client = owned_client()
    open_dispute(client)
    with pytest.raises(Conflict) as error:
        open_dispute(client)
    assert error.value.code == "dispute_open"
    with pytest.raises(InvalidInput) as invalid:
        open_dispute(client, "partner-b", kind="channel", report_id="not-here")
    assert invalid.value.field == "report_id"


def test_an_upheld_ruling_moves_the_buyer_to_the_claimant_on_basis_ruling() -> None:
    client = owned_client()
    dispute_id = open_dispute(client)
    new_events(client)

    rule(client, dispute_id, "upheld")

    events = new_events(client)
    assert types(events) == ["DisputeRuled", "OwnershipTransferred", "ScheduleUpdated"]
    ruled = of_type(events, "DisputeRuled")
    assert (ruled.outcome, ruled.final, ruled.evidence_versions) == ("upheld", False, [1, 2])
    moved = of_type(events, "OwnershipTransferred")
    assert (moved.consultant_id, moved.basis, moved.dispute_id) == ("cons-2", "ruling", dispute_id)
    assert client.owner is not None and client.owner.basis == "ruling"
    assert client.dispute(dispute_id).rulings[0]["ruled_by"] == MANAGER.as_dict()


def test_a_dismissed_ruling_changes_no_owner() -> None:
    client = owned_client()
    dispute_id = open_dispute(client)
    new_events(client)

    rule(client, dispute_id, "dismissed")

    assert types(new_events(client)) == ["DisputeRuled"]
    assert client.owner is not None and client.owner.consultant_id == OWNER.id


def test_a_ruling_must_cite_evidence_and_a_valid_outcome() -> None:
    client = owned_client()
    dispute_id = open_dispute(client)
    with pytest.raises(InvalidInput):
        client.rule_dispute(
            dispute_id=dispute_id,
            outcome="upheld",
            reason="r",
            evidence_versions=[],
            policy=POLICY,
            at=START,
            trace=TRACE,
        )
    with pytest.raises(InvalidInput):
        rule(client, dispute_id, "maybe")


def test_an_appeal_then_a_final_dismissal_restores_the_earlier_owner() -> None:
    # Given a channel-reported buyer awarded to cons-2 by an upheld ruling
    client = owned_client(partner_id="partner-a")
    dispute_id = open_dispute(client)
    rule(client, dispute_id, "upheld")
    new_events(client)

    # When the earlier owner appeals and the final ruling dismisses the claim
    client.appeal_dispute(dispute_id, "the ruling ignored my visit", START + days(3), TRACE)
    assert client.dispute(dispute_id).status == "appealed"
    rule(client, dispute_id, "dismissed", at_day=4)

    # Then ownership is back with the earlier consultant and channel, and it is final
    events = new_events(client)
    assert types(events) == [
        "DisputeAppealed",
        "DisputeRuled",
        "OwnershipTransferred",
        "ScheduleUpdated",
    ]
    assert of_type(events, "DisputeRuled").final is True
    restored = of_type(events, "OwnershipTransferred")
    assert (restored.consultant_id, restored.partner_id) == (OWNER.id, "partner-a")
    assert restored.basis == "ruling"
    assert client.owner is not None and client.owner.consultant_id == OWNER.id
    assert client.dispute(dispute_id).status == "final"


def test_there_is_one_appeal_and_no_ruling_after_the_final_one() -> None:
    client = owned_client()
    dispute_id = open_dispute(client)
    with pytest.raises(Conflict):
        client.appeal_dispute(dispute_id, "not ruled yet", START, TRACE)
    rule(client, dispute_id, "dismissed")
    client.appeal_dispute(dispute_id, "once", START + days(3), TRACE)
    rule(client, dispute_id, "upheld", at_day=4)
    assert client.owner is not None and client.owner.consultant_id == "cons-2"

    with pytest.raises(Conflict) as appeal:
        client.appeal_dispute(dispute_id, "twice", START + days(5), TRACE)
    assert appeal.value.code == "not_appealable"
    with pytest.raises(Conflict) as ruling:
        rule(client, dispute_id, "dismissed", at_day=6)
    assert ruling.value.code == "not_open"


def test_a_channel_claim_upheld_moves_the_attribution_not_the_consultant() -> None:
    # Given a walk-in owned by cons-1, and a report by partner-b that arrived too late
    client = owned_client()
    report = client.record_report(
        report_id="late-report",
        partner_id="partner-b",
        agent_id="agent-b",
        masked=False,
        phone_masked=client.phone_masked,
        expected_visit_at=None,
        pii="sealed",
        decision=FilingDecision(False, "protected"),
        valid_until=START + days(3),
        policy_version=POLICY.version,
        at=START + hours(1),
        trace=TRACE,
    )
    dispute_id = open_dispute(client, "partner-b", kind="channel", report_id=report.report_id)
    new_events(client)

    rule(client, dispute_id, "upheld")

    moved = of_type(new_events(client), "OwnershipTransferred")
    assert (moved.consultant_id, moved.partner_id) == (OWNER.id, "partner-b")
    assert moved.report_id == "late-report"
    assert client.owner is not None and client.owner.partner_id == "partner-b"


def test_the_whole_life_replays_from_its_events_to_the_same_state() -> None:
    # Given a buyer taken from visit to follow-up, loss, pool, claim and a ruling
    client = new_client()
    visit(client, START)
    follow_up(client, START + days(9), grade="A")
    request_id = str(uuid.uuid4())
    client.request_loss(OWNER, request_id, "price", "sealed", START + days(10), TRACE)
    client.approve_loss(request_id, "ok", POLICY, START + days(10), TRACE)
    client.claim("claim-1", "cons-2", None, POLICY, START + days(11), TRACE)
    dispute_id = open_dispute(client, OWNER.id, at_day=11.5)
    rule(client, dispute_id, "upheld", at_day=12)

    # When the stream is replayed from its events alone
    events = new_events(client)
    copy = replay(events)

    # Then the replay judges exactly as the live aggregate did
    assert isinstance(copy, Client)
    assert copy.version == client.version == len(events)
    assert copy.owner == client.owner
    assert copy.owner is not None and copy.owner.consultant_id == OWNER.id
    assert (copy.grade, copy.lost_reason) == ("A", "price")
    assert copy.claims["claim-1"].status == "approved"
    assert copy.dispute(dispute_id).rulings[0]["outcome"] == "upheld"
    assert copy.next_follow_up_due == client.next_follow_up_due
