"""Who holds the buyer after the deciding visit, and on what clock.

The core every other part of the Client builds on: the owner and their protection
period (保护期), the follow-up schedule, the buyer's visits to the office (recorded by
the Client's deciding visit, read by filing and by the working-day rules), the buyer's
deals (成交, which keep them with their consultant), and the two ways custody moves — a
transfer to another consultant and a release to the public pool (公海池). Guards raise
domain errors; every change is an event with actor and request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.attribution import OwnerView
from domain.clock_rules import first_follow_up_due, inactive_after
from domain.errors import Conflict, Forbidden
from domain.policy import Policy
from domain.reports import ReportBook
from domain.values import Actor
from domain.vocabulary import Role

SUPERVISING_ROLES: tuple[Role, ...] = ("supervisor", "manager", "admin")


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
class Visit:
    visit_id: str
    at: datetime
    consultant_id: str
    partner_id: str | None
    agent_id: str | None
    version: int


class Custody(ReportBook):
    # ------------------------------------------------------------------ events

    class ScheduleUpdated(Aggregate.Event):
        """When the next follow-up is due and when inactivity would release the buyer."""

        next_follow_up_due: datetime | None
        inactive_after: datetime | None
        basis: str
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Custody)
            aggregate.next_follow_up_due = self.next_follow_up_due
            aggregate.follow_up_basis = self.basis
            aggregate.inactive_after = self.inactive_after

    class ReleasedToPool(Aggregate.Event):
        reason: str
        previous_consultant_id: str | None
        previous_partner_id: str | None
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Custody)
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
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Custody)
            aggregate.take_ownership(
                self, self.consultant_id, self.partner_id, self.report_id, self.basis
            )

    class DealMilestoneRecorded(Aggregate.Event):
        """A step of one of the buyer's deals (成交), written with the deal's own event."""

        deal_id: uuid.UUID
        unit_id: uuid.UUID
        milestone: str
        deal_status: str  # open | completed | cancelled
        amount: int | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Custody)
            aggregate.deals[str(self.deal_id)] = self.deal_status

    # ------------------------------------------------------------------- state

    def __init__(self) -> None:
        super().__init__()
        self.owner: Ownership | None = None
        # The buyer's visits to the office, in order: the Client records them (the
        # deciding visit); filing and the working-day rules read the last one.
        self.visits: list[Visit] = []
        self.next_follow_up_due: datetime | None = None
        self.follow_up_basis: str | None = None
        self.inactive_after: datetime | None = None
        self.in_pool = False
        self.released_at: datetime | None = None
        self.release_reason: str | None = None
        self.release_decision: tuple[int, int] | None = None  # (event version, policy version)
        self.deals: dict[str, str] = {}  # deal id → open | completed | cancelled
        # Free text kept in state, as vault tokens by place ("source_detail",
        # "dispute:<id>", "ruling:<version>", "appeal:<id>"); see domain.sealing.
        self.sealed_texts: dict[str, str] = {}

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
    def status(self) -> str:
        if self.owner is not None:
            return "owned"
        return "pool" if self.in_pool else "unowned"

    def last_visit_at(self) -> datetime | None:
        return self.visits[-1].at if self.visits else None

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
        sealed: str = "",
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
            sealed=sealed,
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
