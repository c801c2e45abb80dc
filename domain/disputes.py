"""Disputes over who owns a buyer (判定) and the one appeal (申诉) against a ruling.

A ruling cites the events of this stream it relied on; an upheld claim moves the owner
or the channel, and an appeal that reverses it puts attribution back as it stood.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.custody import Custody
from domain.errors import Conflict, InvalidInput, NotFound
from domain.policy import Policy
from domain.vocabulary import DISPUTE_OUTCOMES


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


class Disputes(Custody):
    # ------------------------------------------------------------------ events

    class DisputeOpened(Aggregate.Event):
        dispute_id: str
        claimant_kind: str
        claimant_id: str
        report_id: str | None
        reason: str
        evidence_versions: list[int]
        owner_at_opening: dict[str, str | None]
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Disputes)
            if self.sealed:
                aggregate.sealed_texts[f"dispute:{self.dispute_id}"] = self.sealed
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
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Disputes)
            if self.sealed:
                aggregate.sealed_texts[f"ruling:{self.originator_version}"] = self.sealed
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
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Disputes)
            if self.sealed:
                aggregate.sealed_texts[f"appeal:{self.dispute_id}"] = self.sealed
            dispute = aggregate.disputes[self.dispute_id]
            dispute.status = "appealed"
            dispute.appeal = {
                "reason": self.reason,
                "appealed_by": dict(getattr(self, "actor", {})),
                "appealed_at": self.timestamp,
                "version": self.originator_version,
            }

    # ------------------------------------------------------------------- state

    def __init__(self) -> None:
        super().__init__()
        self.disputes: dict[str, DisputeState] = {}

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
        sealed: str = "",
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
            sealed=sealed,
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
        sealed: str = "",
    ) -> None:
        dispute = self.dispute(dispute_id)
        if dispute.status not in ("open", "appealed"):
            raise Conflict(f"the dispute is {dispute.status}; nothing to rule on", code="not_open")
        if outcome not in DISPUTE_OUTCOMES:
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
            sealed=sealed,
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
                sealed=self.sealed_texts.get(f"dispute:{dispute.dispute_id}", ""),
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
            sealed=self.sealed_texts.get(f"dispute:{dispute.dispute_id}", ""),
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
        self, dispute_id: str, reason: str, at: datetime, trace: dict[str, Any], sealed: str = ""
    ) -> DisputeState:
        dispute = self.dispute(dispute_id)
        if dispute.status != "ruled":
            raise Conflict(
                "only a ruled dispute can be appealed, and only once", code="not_appealable"
            )
        self.trigger_event(
            self.DisputeAppealed,
            dispute_id=dispute_id,
            reason=reason,
            sealed=sealed,
            timestamp=at,
            **trace,
        )
        return dispute
