"""What happens to a buyer after the deciding visit: follow-ups, grades, the protection
clock, losses (战败), the public pool (公海池), transfers and disputes (判定/申诉).

Kept as a base of Client so the evidence chain stays one stream while this file stays
readable. Guards raise domain errors; every change is an event with actor and request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.attribution import OwnerView
from domain.clock_rules import (
    extended_protection,
    first_follow_up_due,
    inactive_after,
    next_follow_up_due,
)
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.policy import Policy
from domain.reports import ReportBook
from domain.values import Actor

FOLLOW_UP_METHODS = ("call", "wechat", "sms", "visit", "other")
LOSS_REASONS = (
    "price",
    "location",
    "layout_area",
    "school_district",
    "bought_elsewhere",
    "loan_refused",
    "unreachable",
    "no_longer_buying",
    "other",
)
RELEASE_REASONS = ("expired", "inactive", "lost", "departure", "ruling")
SUPERVISING_ROLES = ("supervisor", "manager", "admin")


@dataclass
class Ownership:
    consultant_id: str
    partner_id: str | None
    report_id: str | None
    basis: str  # report | walk_in | pool_claim | transfer | departure | expiry | ruling
    since: datetime
    protected_until: datetime
    policy_version: int
    decided_version: int  # the version of the event that made this ownership: its epoch

    def view(self) -> OwnerView:
        return OwnerView(self.consultant_id, self.partner_id, self.protected_until)


@dataclass
class LossRequest:
    request_id: str
    reason: str
    requested_by: str
    requested_at: datetime
    status: str = "pending"  # pending | approved | rejected


@dataclass
class PoolClaim:
    claim_id: str
    consultant_id: str
    requested_at: datetime
    status: str = "pending"  # pending | approved | rejected


@dataclass
class DisputeState:
    dispute_id: str
    claimant_kind: str  # consultant | channel
    claimant_id: str
    report_id: str | None
    reason: str
    evidence_versions: list[int]
    opened_by: dict[str, str]
    opened_at: datetime
    opened_version: int
    owner_at_opening: dict[str, str | None]
    status: str = "open"  # open | ruled | appealed | final
    rulings: list[dict[str, Any]] = field(default_factory=list)
    appeal: dict[str, Any] | None = None


class ClientLifecycle(ReportBook):
    # ------------------------------------------------------------------ events

    class ScheduleUpdated(Aggregate.Event):
        """When the next follow-up is due and when inactivity would release the buyer."""

        next_follow_up_due: datetime | None
        inactive_after: datetime | None
        basis: str
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.next_follow_up_due = self.next_follow_up_due
            aggregate.follow_up_basis = self.basis
            aggregate.inactive_after = self.inactive_after

    class FollowUpLogged(Aggregate.Event):
        follow_up_id: str
        consultant_id: str
        method: str
        effective: bool
        next_contact_at: datetime | None
        grade: str | None
        pii: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.follow_ups += 1
            aggregate.last_follow_up_at = self.timestamp
            aggregate.requested_next_contact = self.next_contact_at
            if self.effective:
                aggregate.effective_follow_ups += 1
                aggregate.last_effective_follow_up_at = self.timestamp

    class GradeChanged(Aggregate.Event):
        grade: str
        previous_grade: str | None
        reason: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.grade = self.grade

    class ProfileUpdated(Aggregate.Event):
        profile: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.profile = dict(self.profile)

    class ProtectionExtended(Aggregate.Event):
        previous_until: datetime
        protected_until: datetime
        trigger: str  # follow_up | visit
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            assert aggregate.owner is not None
            aggregate.owner.protected_until = self.protected_until

    class ProtectionExpired(Aggregate.Event):
        protected_until: datetime
        policy_version: int

    class ReleasedToPool(Aggregate.Event):
        reason: str
        previous_consultant_id: str | None
        previous_partner_id: str | None
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.owner = None
            aggregate.in_pool = True
            aggregate.released_at = self.timestamp
            aggregate.release_reason = self.reason
            aggregate.release_decision = (self.originator_version, self.policy_version)
            aggregate.next_follow_up_due = None
            aggregate.inactive_after = None

    class OwnershipTransferred(Aggregate.Event):
        consultant_id: str
        partner_id: str | None
        report_id: str | None
        previous_consultant_id: str | None
        basis: str  # transfer | departure | expiry | ruling
        reason: str
        since: datetime
        protected_until: datetime
        policy_version: int
        dispute_id: str | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.take_ownership(
                self, self.consultant_id, self.partner_id, self.report_id, self.basis
            )

    class LossRequested(Aggregate.Event):
        request_id: str
        reason: str
        pii: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.loss_requests[self.request_id] = LossRequest(
                self.request_id,
                self.reason,
                getattr(self, "actor", {}).get("id", ""),
                self.timestamp,
            )

    class LossApproved(Aggregate.Event):
        request_id: str
        loss_reason: str
        comment: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.loss_requests[self.request_id].status = "approved"
            aggregate.lost_reason = self.loss_reason

    class LossRejected(Aggregate.Event):
        request_id: str
        comment: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.loss_requests[self.request_id].status = "rejected"

    class ClaimRequested(Aggregate.Event):
        claim_id: str
        consultant_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.claims[self.claim_id] = PoolClaim(
                self.claim_id, self.consultant_id, self.timestamp
            )

    class ClaimRejected(Aggregate.Event):
        claim_id: str
        reason: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.claims[self.claim_id].status = "rejected"

    class ClaimedFromPool(Aggregate.Event):
        claim_id: str
        consultant_id: str
        approved_by: str | None
        since: datetime
        protected_until: datetime
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            claim = aggregate.claims.setdefault(
                self.claim_id, PoolClaim(self.claim_id, self.consultant_id, self.timestamp)
            )
            claim.status = "approved"
            aggregate.take_ownership(self, self.consultant_id, None, None, "pool_claim")

    class DisputeOpened(Aggregate.Event):
        dispute_id: str
        claimant_kind: str
        claimant_id: str
        report_id: str | None
        reason: str
        evidence_versions: list[int]
        owner_at_opening: dict[str, str | None]

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.disputes[self.dispute_id] = DisputeState(
                dispute_id=self.dispute_id,
                claimant_kind=self.claimant_kind,
                claimant_id=self.claimant_id,
                report_id=self.report_id,
                reason=self.reason,
                evidence_versions=list(self.evidence_versions),
                opened_by=dict(getattr(self, "actor", {})),
                opened_at=self.timestamp,
                opened_version=self.originator_version,
                owner_at_opening=dict(self.owner_at_opening),
            )

    class DisputeRuled(Aggregate.Event):
        dispute_id: str
        outcome: str  # upheld | dismissed
        reason: str
        evidence_versions: list[int]
        final: bool

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            dispute = aggregate.disputes[self.dispute_id]
            dispute.rulings.append(
                {
                    "outcome": self.outcome,
                    "reason": self.reason,
                    "evidence_versions": list(self.evidence_versions),
                    "final": self.final,
                    "ruled_by": dict(getattr(self, "actor", {})),
                    "ruled_at": self.timestamp,
                    "version": self.originator_version,
                }
            )
            dispute.status = "final" if self.final else "ruled"

    class DisputeAppealed(Aggregate.Event):
        dispute_id: str
        reason: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            dispute = aggregate.disputes[self.dispute_id]
            dispute.status = "appealed"
            dispute.appeal = {
                "reason": self.reason,
                "appealed_by": dict(getattr(self, "actor", {})),
                "appealed_at": self.timestamp,
                "version": self.originator_version,
            }

    class DealMilestoneRecorded(Aggregate.Event):
        """A step of one of the buyer's deals (成交), written with the deal's own event."""

        deal_id: uuid.UUID
        unit_id: uuid.UUID
        milestone: str
        deal_status: str  # open | completed | cancelled
        amount: int | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientLifecycle)
            aggregate.deals[str(self.deal_id)] = self.deal_status

    # ------------------------------------------------------------------- state

    def __init__(self) -> None:
        super().__init__()
        self.owner: Ownership | None = None
        self.grade: str | None = None
        self.profile: dict[str, Any] = {}
        self.follow_ups = 0
        self.effective_follow_ups = 0
        self.last_follow_up_at: datetime | None = None
        self.requested_next_contact: datetime | None = None
        self.last_effective_follow_up_at: datetime | None = None
        self.next_follow_up_due: datetime | None = None
        self.follow_up_basis: str | None = None
        self.inactive_after: datetime | None = None
        self.in_pool = False
        self.released_at: datetime | None = None
        self.release_reason: str | None = None
        self.release_decision: tuple[int, int] | None = None  # (event version, policy version)
        self.lost_reason: str | None = None
        self.loss_requests: dict[str, LossRequest] = {}
        self.claims: dict[str, PoolClaim] = {}
        self.disputes: dict[str, DisputeState] = {}
        self.deals: dict[str, str] = {}  # deal id → open | completed | cancelled

    def take_ownership(
        self,
        event: Any,
        consultant_id: str,
        partner_id: str | None,
        report_id: str | None,
        basis: str,
    ) -> None:
        self.owner = Ownership(
            consultant_id=consultant_id,
            partner_id=partner_id,
            report_id=report_id,
            basis=basis,
            since=event.since,
            protected_until=event.protected_until,
            policy_version=event.policy_version,
            decided_version=event.originator_version,
        )
        self.in_pool = False

    @property
    def pending_loss(self) -> LossRequest | None:
        return next((r for r in self.loss_requests.values() if r.status == "pending"), None)

    @property
    def pending_claim(self) -> PoolClaim | None:
        return next((c for c in self.claims.values() if c.status == "pending"), None)

    @property
    def status(self) -> str:
        if self.owner is not None:
            return "owned"
        return "pool" if self.in_pool else "unowned"

    @property
    def in_deal(self) -> bool:
        """A deal not cancelled — open, or completed (the buyer owns the unit now) — keeps
        the buyer with their consultant: no release to the pool, no claim, no loss."""
        return any(status != "cancelled" for status in self.deals.values())

    def record_deal_milestone(
        self,
        *,
        deal_id: uuid.UUID,
        unit_id: uuid.UUID,
        milestone: str,
        deal_status: str,
        amount: int | None,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self.trigger_event(
            self.DealMilestoneRecorded,
            deal_id=deal_id,
            unit_id=unit_id,
            milestone=milestone,
            deal_status=deal_status,
            amount=amount,
            timestamp=at,
            **trace,
        )

    # ------------------------------------------------------------------ guards

    def _refuse_in_deal(self) -> None:
        if self.in_deal:
            raise Conflict(
                "the client is in a deal (成交): they cannot be released, lost or claimed",
                code="client_in_deal",
            )

    def _require_owner(self) -> Ownership:
        if self.owner is None:
            raise Conflict("the client has no owner", code="not_owned")
        return self.owner

    def _require_owner_or_supervisor(self, actor: Actor) -> Ownership:
        owner = self._require_owner()
        if actor.role not in SUPERVISING_ROLES and actor.id != owner.consultant_id:
            raise Forbidden("only the owning consultant or a supervisor or manager may do this")
        return owner

    # ---------------------------------------------------------------- schedule

    def _schedule(
        self,
        policy: Policy,
        at: datetime,
        basis: str,
        trace: dict[str, Any],
        due: datetime | None,
        last_activity: datetime | None,
    ) -> None:
        idle = inactive_after(policy, last_activity) if last_activity else self.inactive_after
        self.trigger_event(
            self.ScheduleUpdated,
            next_follow_up_due=due,
            inactive_after=idle,
            basis=basis,
            policy_version=policy.version,
            timestamp=at,
            **trace,
        )

    def start_schedule(self, policy: Policy, at: datetime, trace: dict[str, Any]) -> None:
        """A new owner: first follow-up due soon, inactivity counted from now."""
        self._schedule(policy, at, "first_follow_up", trace, first_follow_up_due(policy, at), at)

    def extend_protection(
        self, policy: Policy, at: datetime, trigger: str, trace: dict[str, Any]
    ) -> None:
        owner = self._require_owner()
        new_until = extended_protection(policy, owner.since, owner.protected_until, at)
        if new_until is not None:
            self.trigger_event(
                self.ProtectionExtended,
                previous_until=owner.protected_until,
                protected_until=new_until,
                trigger=trigger,
                policy_version=policy.version,
                timestamp=at,
                **trace,
            )

    def note_owner_visit(self, policy: Policy, at: datetime, trace: dict[str, Any]) -> None:
        """A visit by an owned buyer counts as contact: protection and inactivity move."""
        self.extend_protection(policy, at, "visit", trace)
        self._schedule(
            policy,
            at,
            self.follow_up_basis or "first_follow_up",
            trace,
            self.next_follow_up_due,
            at,
        )

    # --------------------------------------------------------------- follow-ups

    def log_follow_up(
        self,
        *,
        actor: Actor,
        follow_up_id: str,
        method: str,
        effective: bool,
        next_contact_at: datetime | None,
        grade: str | None,
        pii: str,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        owner = self._require_owner_or_supervisor(actor)
        if method not in FOLLOW_UP_METHODS:
            raise InvalidInput("method", f"must be one of {', '.join(FOLLOW_UP_METHODS)}")
        if next_contact_at is not None and next_contact_at <= at:
            raise InvalidInput("next_contact_at", "must be in the future")
        if grade is not None and grade not in ("A", "B", "C"):
            raise InvalidInput("grade", "must be A, B or C")
        self.trigger_event(
            self.FollowUpLogged,
            follow_up_id=follow_up_id,
            consultant_id=owner.consultant_id,
            method=method,
            effective=effective,
            next_contact_at=next_contact_at,
            grade=grade,
            pii=pii,
            timestamp=at,
            **trace,
        )
        if grade is not None and grade != self.grade:
            self._grade(grade, "set with a follow-up", at, trace)
        if effective:
            self.extend_protection(policy, at, "follow_up", trace)
        due, basis = next_follow_up_due(policy, self.grade, at, next_contact_at)
        self._schedule(policy, at, basis, trace, due, at if effective else None)

    def _grade(self, grade: str, reason: str, at: datetime, trace: dict[str, Any]) -> None:
        if grade not in ("A", "B", "C"):
            raise InvalidInput("grade", "must be A, B or C")
        self.trigger_event(
            self.GradeChanged,
            grade=grade,
            previous_grade=self.grade,
            reason=reason,
            timestamp=at,
            **trace,
        )

    def change_grade(
        self,
        actor: Actor,
        grade: str,
        reason: str,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self._require_owner_or_supervisor(actor)
        if grade == self.grade:
            return
        self._grade(grade, reason, at, trace)
        owner, last = self.owner, self.last_follow_up_at
        if owner is None or last is None or last < owner.since:
            return  # the first follow-up after assignment stays due as scheduled
        # The cadence restarts from this owner's last contact under the new grade, unless
        # the consultant asked for an earlier next contact then.
        due, basis = next_follow_up_due(policy, self.grade, last, self.requested_next_contact)
        # A cadence that ran out before the grade changed makes the buyer due now, not
        # retroactively overdue (and escalated) for days the consultant could not see.
        self._schedule(policy, at, basis, trace, max(due, at), None)

    def update_profile(
        self, actor: Actor, profile: dict[str, Any], at: datetime, trace: dict[str, Any]
    ) -> None:
        self._require_owner_or_supervisor(actor)
        self.trigger_event(self.ProfileUpdated, profile=profile, timestamp=at, **trace)

    # ---------------------------------------------------------- releasing

    def _release(self, reason: str, policy: Policy, at: datetime, trace: dict[str, Any]) -> None:
        self._refuse_in_deal()
        owner = self._require_owner()
        self.trigger_event(
            self.ReleasedToPool,
            reason=reason,
            previous_consultant_id=owner.consultant_id,
            previous_partner_id=owner.partner_id,
            policy_version=policy.version,
            timestamp=at,
            **trace,
        )

    def _expire_to(self, reason: str, policy: Policy, at: datetime, trace: dict[str, Any]) -> None:
        """Where an expired or inactive buyer goes: the pool, or the project manager."""
        owner = self._require_owner()
        manager = policy.expiry_manager_id
        if policy.on_expiry == "manager" and manager and manager != owner.consultant_id:
            self.transfer(
                to=manager, basis="expiry", reason=reason, policy=policy, at=at, trace=trace
            )
        else:
            self._release(reason, policy, at, trace)

    def expire_protection(
        self, epoch: int | None, policy: Policy, at: datetime, trace: dict[str, Any]
    ) -> bool:
        """Act only if this ownership (``epoch``) is still the one whose clock ran out.

        A buyer in a deal is never released by the clock: the deadline is a no-op then.
        """
        owner = self.owner
        if owner is None or at < owner.protected_until or self.in_deal:
            return False
        if epoch is not None and owner.decided_version != epoch:
            return False
        self.trigger_event(
            self.ProtectionExpired,
            protected_until=owner.protected_until,
            policy_version=policy.version,
            timestamp=at,
            **trace,
        )
        self._expire_to("expired", policy, at, trace)
        return True

    def release_inactive(
        self, epoch: int | None, policy: Policy, at: datetime, trace: dict[str, Any]
    ) -> bool:
        owner = self.owner
        if owner is None or self.inactive_after is None or at < self.inactive_after:
            return False
        if self.in_deal:  # a deal in progress is activity enough: no release
            return False
        if epoch is not None and owner.decided_version != epoch:
            return False
        self._expire_to("inactive", policy, at, trace)
        return True

    # ------------------------------------------------------------- transfers

    def transfer(
        self,
        *,
        to: str,
        basis: str,
        reason: str,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
        partner_id: str | None = None,
        keep_partner: bool = True,
        report_id: str | None = None,
        dispute_id: str | None = None,
    ) -> None:
        """Manual transfers bypass the protection cap: the new owner starts a fresh period."""
        owner = self.owner
        if owner is not None and owner.consultant_id == to and basis != "ruling":
            raise Conflict(f"{to} already owns this client", code="already_owner")
        self.trigger_event(
            self.OwnershipTransferred,
            consultant_id=to,
            partner_id=(owner.partner_id if owner and keep_partner else partner_id),
            report_id=(owner.report_id if owner and keep_partner else report_id),
            previous_consultant_id=owner.consultant_id if owner else None,
            basis=basis,
            reason=reason,
            since=at,
            protected_until=at + policy.protection_delta,
            policy_version=policy.version,
            dispute_id=dispute_id,
            timestamp=at,
            **trace,
        )
        self.start_schedule(policy, at, trace)

    def depart(
        self,
        consultant_id: str,
        successor_id: str | None,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
    ) -> bool:
        """Move this buyer off a departing consultant; False if they no longer own it.

        A buyer in a deal is not sent to the pool: without a successor they stay until a
        manager transfers them (their deals stay visible in the deal pipeline).
        """
        if self.owner is None or self.owner.consultant_id != consultant_id:
            return False
        if successor_id is None and self.in_deal:
            return False
        if successor_id is None:
            self._release("departure", policy, at, trace)
        else:
            self.transfer(
                to=successor_id,
                basis="departure",
                reason=f"{consultant_id} left",
                policy=policy,
                at=at,
                trace=trace,
            )
        return True

    # ----------------------------------------------------------------- losses

    def request_loss(
        self,
        actor: Actor,
        request_id: str,
        reason: str,
        pii: str,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self._require_owner_or_supervisor(actor)
        self._refuse_in_deal()
        if reason not in LOSS_REASONS:
            raise InvalidInput("reason", f"must be one of {', '.join(LOSS_REASONS)}")
        if self.pending_loss is not None:
            raise Conflict("a loss request is already waiting for review", code="loss_pending")
        self.trigger_event(
            self.LossRequested,
            request_id=request_id,
            reason=reason,
            pii=pii,
            timestamp=at,
            **trace,
        )

    def _pending_loss(self, request_id: str) -> LossRequest:
        request = self.loss_requests.get(request_id)
        if request is None:
            raise NotFound("loss request not found")
        if request.status != "pending":
            raise Conflict(f"the loss request is already {request.status}", code="decided")
        return request

    def approve_loss(
        self,
        request_id: str,
        comment: str,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        request = self._pending_loss(request_id)
        self.trigger_event(
            self.LossApproved,
            request_id=request_id,
            loss_reason=request.reason,
            comment=comment,
            timestamp=at,
            **trace,
        )
        if self.owner is not None:
            self._release("lost", policy, at, trace)

    def reject_loss(
        self, request_id: str, comment: str, at: datetime, trace: dict[str, Any]
    ) -> None:
        self._pending_loss(request_id)
        self.trigger_event(
            self.LossRejected, request_id=request_id, comment=comment, timestamp=at, **trace
        )

    # ------------------------------------------------------------------ pool

    def _require_pool(self) -> None:
        if not self.in_pool:
            raise Conflict("the client is not in the public pool", code="not_in_pool")
        self._refuse_in_deal()

    def request_claim(
        self, claim_id: str, consultant_id: str, at: datetime, trace: dict[str, Any]
    ) -> None:
        self._require_pool()
        if self.pending_claim is not None:
            raise Conflict(
                "another claim on this client is waiting for approval", code="claim_pending"
            )
        self.trigger_event(
            self.ClaimRequested,
            claim_id=claim_id,
            consultant_id=consultant_id,
            timestamp=at,
            **trace,
        )

    def claim(
        self,
        claim_id: str,
        consultant_id: str,
        approved_by: str | None,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self._require_pool()
        pending = self.pending_claim
        if pending is not None and pending.claim_id != claim_id:
            raise Conflict(
                "another claim on this client is waiting for approval", code="claim_pending"
            )
        self.trigger_event(
            self.ClaimedFromPool,
            claim_id=claim_id,
            consultant_id=consultant_id,
            approved_by=approved_by,
            since=at,
            protected_until=at + policy.protection_delta,
            policy_version=policy.version,
            timestamp=at,
            **trace,
        )
        self.start_schedule(policy, at, trace)

    def pending_claim_by_id(self, claim_id: str) -> PoolClaim:
        claim = self.claims.get(claim_id)
        if claim is None:
            raise NotFound("claim not found")
        if claim.status != "pending":
            raise Conflict(f"the claim is already {claim.status}", code="decided")
        return claim

    def reject_claim(
        self, claim_id: str, reason: str, at: datetime, trace: dict[str, Any]
    ) -> PoolClaim:
        claim = self.pending_claim_by_id(claim_id)
        self.trigger_event(
            self.ClaimRejected, claim_id=claim_id, reason=reason, timestamp=at, **trace
        )
        return claim

    # --------------------------------------------------------------- disputes

    def open_dispute(
        self,
        *,
        dispute_id: str,
        claimant_kind: str,
        claimant_id: str,
        report_id: str | None,
        reason: str,
        evidence_versions: list[int],
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self._check_evidence(evidence_versions)
        if report_id is not None and report_id not in self.reports:
            raise InvalidInput("report_id", "is not a report of this client")
        if any(
            d.claimant_id == claimant_id and d.status != "final" for d in self.disputes.values()
        ):
            raise Conflict(
                "this claimant already has an open dispute on the client", code="dispute_open"
            )
        owner = self.owner
        self.trigger_event(
            self.DisputeOpened,
            dispute_id=dispute_id,
            claimant_kind=claimant_kind,
            claimant_id=claimant_id,
            report_id=report_id,
            reason=reason,
            evidence_versions=evidence_versions,
            owner_at_opening={
                "consultant_id": owner.consultant_id if owner else None,
                "partner_id": owner.partner_id if owner else None,
                "report_id": owner.report_id if owner else None,
            },
            timestamp=at,
            **trace,
        )

    def _check_evidence(self, versions: list[int]) -> None:
        for v in versions:
            if not 1 <= v <= self.version:
                raise InvalidInput(
                    "evidence_versions", f"version {v} is not an event of this client"
                )

    def dispute(self, dispute_id: str) -> DisputeState:
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise NotFound("dispute not found")
        return dispute

    def rule_dispute(
        self,
        *,
        dispute_id: str,
        outcome: str,
        reason: str,
        evidence_versions: list[int],
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        dispute = self.dispute(dispute_id)
        if dispute.status not in ("open", "appealed"):
            raise Conflict(f"the dispute is {dispute.status}; nothing to rule on", code="not_open")
        if outcome not in ("upheld", "dismissed"):
            raise InvalidInput("outcome", "must be upheld or dismissed")
        if not evidence_versions:
            raise InvalidInput("evidence_versions", "a ruling must cite the events it relied on")
        self._check_evidence(evidence_versions)
        final = dispute.status == "appealed"
        previously_upheld = bool(dispute.rulings) and dispute.rulings[-1]["outcome"] == "upheld"
        self.trigger_event(
            self.DisputeRuled,
            dispute_id=dispute_id,
            outcome=outcome,
            reason=reason,
            evidence_versions=evidence_versions,
            final=final,
            timestamp=at,
            **trace,
        )
        if outcome == "upheld" and not previously_upheld:
            self._award_to_claimant(dispute, policy, at, trace)
        elif outcome == "dismissed" and previously_upheld:
            self._restore_after_reversal(dispute, policy, at, trace)

    def _award_to_claimant(
        self, dispute: DisputeState, policy: Policy, at: datetime, trace: dict[str, Any]
    ) -> None:
        if dispute.claimant_kind == "consultant":
            self.transfer(
                to=dispute.claimant_id,
                basis="ruling",
                reason=dispute.reason,
                policy=policy,
                at=at,
                trace=trace,
                dispute_id=dispute.dispute_id,
            )
            return
        owner = self.owner
        if owner is None:
            raise Conflict("the client has no owner to attribute to the channel", code="not_owned")
        self.transfer(
            to=owner.consultant_id,
            basis="ruling",
            reason=dispute.reason,
            policy=policy,
            at=at,
            trace=trace,
            keep_partner=False,
            partner_id=dispute.claimant_id,
            report_id=dispute.report_id,
            dispute_id=dispute.dispute_id,
        )

    def _restore_after_reversal(
        self, dispute: DisputeState, policy: Policy, at: datetime, trace: dict[str, Any]
    ) -> None:
        """The appeal reversed an upheld ruling: attribution goes back to how it stood."""
        before = dispute.owner_at_opening
        consultant = before.get("consultant_id")
        if consultant is None:
            if self.owner is not None:
                self._release("ruling", policy, at, trace)
            return
        self.transfer(
            to=consultant,
            basis="ruling",
            reason="appeal reversed the ruling",
            policy=policy,
            at=at,
            trace=trace,
            keep_partner=False,
            partner_id=before.get("partner_id"),
            report_id=before.get("report_id"),
            dispute_id=dispute.dispute_id,
        )

    def appeal_dispute(
        self, dispute_id: str, reason: str, at: datetime, trace: dict[str, Any]
    ) -> DisputeState:
        dispute = self.dispute(dispute_id)
        if dispute.status != "ruled":
            raise Conflict(
                "only a ruled dispute can be appealed, and only once", code="not_appealable"
            )
        self.trigger_event(
            self.DisputeAppealed, dispute_id=dispute_id, reason=reason, timestamp=at, **trace
        )
        return dispute
