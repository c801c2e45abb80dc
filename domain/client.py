"""The Client aggregate: one buyer at one project, and the evidence chain for 判客.

Every report for the buyer, every visit and every ownership decision lands in this one
stream, so an arbiter can replay it alone to answer "who owned this buyer, and why".
This module holds registration and the deciding visit; the rest of the buyer's life is
in one part per capability, each readable alone (ADR 0020):

- domain.reports: reports (报备) filed for the buyer
- domain.custody: the owner, the schedule, deals held, transfers and releases
- domain.protection: follow-ups, grades, profile, contact disclosures, the protection
  clock running out
- domain.public_pool: losses (战败) into the public pool and claims (捞客) out of it
- domain.disputes: disputes (判定) and appeals (申诉)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.attribution import Claim, OwnerView, VisitDecision
from domain.custody import Visit
from domain.disputes import Disputes
from domain.migration import ClientMigration
from domain.policy import Policy
from domain.public_pool import PublicPool
from domain.reports import ReportState


class Client(ClientMigration, PublicPool, Disputes):
    class ClientRegistered(Aggregate.Created):
        project_id: str
        phone_masked: str
        phone_hash: str
        pii: str

    class ClientVisited(Aggregate.Event):
        visit_id: str
        consultant_id: str
        partner_id: str | None
        agent_id: str | None
        pii: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Client)
            aggregate.visits.append(
                Visit(
                    self.visit_id,
                    self.timestamp,
                    self.consultant_id,
                    self.partner_id,
                    self.agent_id,
                    self.originator_version,
                )
            )

    class MaskedReportPassedOver(Aggregate.Event):
        """A masked report that fits this buyer lost at this buyer's visit. It stays open
        in its pool for other buyers on the pattern, but never counts for this one again."""

        report_id: str
        reason: str
        visit_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Client)
            aggregate.passed_over.add(self.report_id)

    class MaskedReportMatched(Aggregate.Event):
        """A masked report from the pattern's pool, brought into this buyer's evidence."""

        report_id: str
        pool_id: uuid.UUID
        partner_id: str
        agent_id: str
        filed_at: datetime
        valid_until: datetime
        expected_visit_at: datetime | None
        pii: str
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Client)
            aggregate.reports[self.report_id] = ReportState(
                report_id=self.report_id,
                partner_id=self.partner_id,
                agent_id=self.agent_id,
                masked=True,
                phone_masked=aggregate.phone_masked,
                filed_at=self.filed_at,
                expected_visit_at=self.expected_visit_at,
                pii=self.pii,
                filed_version=self.originator_version,
                policy_version=self.policy_version,
                status="accepted",
                valid_until=self.valid_until,
                decided_version=self.originator_version,
            )

    class ReportConfirmed(Aggregate.Event):
        report_id: str
        visit_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Client)
            aggregate.reports[self.report_id].status = "confirmed"

    class ReportClosed(Aggregate.Event):
        report_id: str
        reason: str
        visit_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Client)
            report = aggregate.reports[self.report_id]
            report.status, report.reason = "closed", self.reason

    class OwnershipAwarded(Aggregate.Event):
        consultant_id: str
        partner_id: str | None
        report_id: str | None
        basis: str
        since: datetime
        protected_until: datetime
        policy_version: int
        visit_id: str | None
        previous_consultant_id: str | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Client)
            aggregate.take_ownership(
                self, self.consultant_id, self.partner_id, self.report_id, self.basis
            )

    class PersonalDataErased(Aggregate.Event):
        """The per-client key was destroyed: sealed fields in this stream are unreadable."""

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Client)
            aggregate.erased = True
            # The register row it came from is forgotten too: re-importing that row must
            # not answer ``unchanged`` (which would tell the importer the buyer was here).
            aggregate.migration_fingerprint = None

    class BuyerReturned(Aggregate.Event):
        """An erased buyer came back: a report or a visit of their number, or a row of the
        office's register. The number is sealed again, under a fresh key; the text of
        every event before this one stays erased (``erased_through``)."""

        phone_masked: str
        pii: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Client)
            aggregate.end_erasure(self.originator_version - 1)
            aggregate.pii = self.pii

    def __init__(self, project_id: str, phone_masked: str, phone_hash: str, pii: str) -> None:
        super().__init__()
        self.project_id = project_id
        self.phone_masked = phone_masked
        self.phone_hash = phone_hash
        self.pii = pii
        self.erased = False
        # A buyer erased and brought back (BuyerReturned): the last version whose text
        # stays [erased]; 0 when never brought back. See ``text_erased``.
        self.erased_through = 0
        self.passed_over: set[str] = set()

    @classmethod
    def register(
        cls,
        client_id: uuid.UUID,
        *,
        project_id: str,
        phone_masked: str,
        phone_hash: str,
        pii: str,
        at: datetime,
        trace: dict[str, Any],
    ) -> Client:
        return cls._create(
            cls.ClientRegistered,
            id=client_id,
            project_id=project_id,
            phone_masked=phone_masked,
            phone_hash=phone_hash,
            pii=pii,
            timestamp=at,
            **trace,
        )

    def owner_view(self) -> OwnerView | None:
        return self.owner.view() if self.owner else None

    def record_visit(
        self,
        *,
        visit_id: str,
        consultant_id: str,
        partner_id: str | None,
        agent_id: str | None,
        pii: str,
        decision: VisitDecision,
        masked_winner: dict[str, Any] | None,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        """Record a visit and apply an already-taken attribution decision."""
        self.trigger_event(
            self.ClientVisited,
            visit_id=visit_id,
            consultant_id=consultant_id,
            partner_id=partner_id,
            agent_id=agent_id,
            pii=pii,
            timestamp=at,
            **trace,
        )
        if decision.kind == "protected":
            self.note_owner_visit(policy, at, trace)
            return
        winner: Claim | None = decision.winner
        if winner is not None:
            if masked_winner is not None:
                self.trigger_event(self.MaskedReportMatched, timestamp=at, **masked_winner, **trace)
            self.trigger_event(
                self.ReportConfirmed,
                report_id=winner.report_id,
                visit_id=visit_id,
                timestamp=at,
                **trace,
            )
        for loser, reason in decision.losers:
            # Full-number losers are closed; masked losers stay in their pool for other
            # buyers on the pattern, but are passed over for this buyer from now on.
            lost = (
                self.ReportClosed
                if loser.report_id in self.reports
                else self.MaskedReportPassedOver
            )
            self.trigger_event(
                lost,
                report_id=loser.report_id,
                reason=reason,
                visit_id=visit_id,
                timestamp=at,
                **trace,
            )
        self.trigger_event(
            self.OwnershipAwarded,
            consultant_id=consultant_id,
            partner_id=winner.partner_id if winner else None,
            report_id=winner.report_id if winner else None,
            basis="report" if winner else "walk_in",
            since=at,
            protected_until=at + policy.protection_delta,
            policy_version=policy.version,
            visit_id=visit_id,
            previous_consultant_id=self.owner.consultant_id if self.owner else None,
            timestamp=at,
            **trace,
        )
        self.start_schedule(policy, at, trace)

    def text_erased(self, version: int) -> bool:
        """Whether the personal text of the event at ``version`` is gone: every event's
        while the buyer is erased; once brought back, those up to the last erasure."""
        return self.erased or version <= self.erased_through

    def come_back(self, pii: str, at: datetime, trace: dict[str, Any]) -> None:
        """An erased buyer's number is here again; ``pii``: it, sealed under a fresh key."""
        if self.erased:
            self.trigger_event(
                self.BuyerReturned, phone_masked=self.phone_masked, pii=pii, timestamp=at, **trace
            )

    def erase(self, at: datetime, trace: dict[str, Any]) -> None:
        if not self.erased:
            self.trigger_event(self.PersonalDataErased, timestamp=at, **trace)

    def ownership_at(self, moment: datetime) -> dict[str, Any]:
        """The owner object as it stood at ``moment``, given events up to then."""
        if self.owner is not None:
            o = self.owner
            return {
                "status": "owned",
                "consultant_id": o.consultant_id,
                "partner_id": o.partner_id,
                "report_id": o.report_id,
                "basis": o.basis,
                "since": o.since,
                "protected_until": o.protected_until,
                "protected": moment < o.protected_until,
                "policy_version": o.policy_version,
                "decided_by_version": o.decided_version,
            }
        claims = sorted(self.valid_claims(moment), key=lambda c: c.order)
        if claims:
            lead = self.reports[claims[0].report_id]
            return {
                "status": "reported",
                "consultant_id": None,
                "partner_id": lead.partner_id,
                "report_id": lead.report_id,
                "basis": "report",
                "since": lead.filed_at,
                "protected_until": lead.valid_until,
                "protected": True,
                "policy_version": lead.policy_version,
                "decided_by_version": lead.decided_version,
            }
        if self.in_pool and self.release_decision is not None:
            version, policy_version = self.release_decision
            return {
                **no_owner(),
                "status": "pool",
                "basis": self.release_reason,
                "since": self.released_at,
                "policy_version": policy_version,
                "decided_by_version": version,
            }
        return no_owner()


def no_owner() -> dict[str, Any]:
    return {
        "status": "none",
        "consultant_id": None,
        "partner_id": None,
        "report_id": None,
        "basis": None,
        "since": None,
        "protected_until": None,
        "protected": False,
        "policy_version": None,
        "decided_by_version": None,
    }
