"""Reports (报备) as kept inside the stream that owns them.

A full-number report lives in its buyer's Client stream; a masked one (前三后四) in the
MaskedReportPool stream of its pattern until a visit matches it to a buyer. Both share
the bookkeeping below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.attribution import Claim, FilingDecision
from domain.errors import NotFound


@dataclass
class ReportState:
    report_id: str
    partner_id: str
    agent_id: str
    masked: bool
    phone_masked: str
    filed_at: datetime
    expected_visit_at: datetime | None
    pii: str
    filed_version: int
    policy_version: int
    status: str = "filed"  # accepted | rejected | confirmed | closed | expired
    reason: str | None = None
    valid_until: datetime | None = None
    decided_version: int | None = None
    client_id: str | None = None

    def status_at(self, moment: datetime) -> str:
        """An accepted report whose validity has passed is expired, event or not."""
        if self.status == "accepted" and self.valid_until and moment >= self.valid_until:
            return "expired"
        return self.status

    def is_valid_at(self, moment: datetime) -> bool:
        return self.status_at(moment) == "accepted"

    def as_claim(self) -> Claim:
        assert self.valid_until is not None
        return Claim(
            report_id=self.report_id,
            partner_id=self.partner_id,
            filed_at=self.filed_at,
            valid_until=self.valid_until,
            masked=self.masked,
            sequence=self.filed_version,
        )


class ReportBook(Aggregate):
    """Base for the aggregates that hold reports; every event names actor and request."""

    class Event(Aggregate.Event):
        actor: dict[str, str]
        correlation_id: str

    class ReportFiled(Aggregate.Event):
        report_id: str
        partner_id: str
        agent_id: str
        masked: bool
        phone_masked: str
        expected_visit_at: datetime | None
        pii: str
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ReportBook)
            aggregate.reports[self.report_id] = ReportState(
                report_id=self.report_id,
                partner_id=self.partner_id,
                agent_id=self.agent_id,
                masked=self.masked,
                phone_masked=self.phone_masked,
                filed_at=self.timestamp,
                expected_visit_at=self.expected_visit_at,
                pii=self.pii,
                filed_version=self.originator_version,
                policy_version=self.policy_version,
            )

    class ReportAccepted(Aggregate.Event):
        report_id: str
        valid_until: datetime
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ReportBook)
            report = aggregate.reports[self.report_id]
            report.status, report.valid_until = "accepted", self.valid_until
            report.decided_version = self.originator_version

    class ReportRejected(Aggregate.Event):
        report_id: str
        reason: str
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ReportBook)
            report = aggregate.reports[self.report_id]
            report.status, report.reason = "rejected", self.reason
            report.decided_version = self.originator_version

    class ReportExpired(Aggregate.Event):
        """Validity ran out before any visit confirmed the report."""

        report_id: str
        valid_until: datetime

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ReportBook)
            aggregate.reports[self.report_id].status = "expired"

    def __init__(self) -> None:
        self.reports: dict[str, ReportState] = {}

    def expire_report(self, report_id: str, at: datetime, trace: dict[str, Any]) -> bool:
        """Record expiry once validity has passed; False if the report moved on."""
        report = self.report(report_id)
        if report.status != "accepted" or report.valid_until is None:
            return False
        if at < report.valid_until:
            return False
        self.trigger_event(
            self.ReportExpired,
            report_id=report_id,
            valid_until=report.valid_until,
            timestamp=at,
            **trace,
        )
        return True

    def record_report(
        self,
        *,
        report_id: str,
        partner_id: str,
        agent_id: str,
        masked: bool,
        phone_masked: str,
        expected_visit_at: datetime | None,
        pii: str,
        decision: FilingDecision,
        valid_until: datetime,
        policy_version: int,
        at: datetime,
        trace: dict[str, Any],
    ) -> ReportState:
        self.trigger_event(
            self.ReportFiled,
            report_id=report_id,
            partner_id=partner_id,
            agent_id=agent_id,
            masked=masked,
            phone_masked=phone_masked,
            expected_visit_at=expected_visit_at,
            pii=pii,
            policy_version=policy_version,
            timestamp=at,
            **trace,
        )
        if decision.accepted:
            self.trigger_event(
                self.ReportAccepted,
                report_id=report_id,
                valid_until=valid_until,
                policy_version=policy_version,
                timestamp=at,
                **trace,
            )
        else:
            self.trigger_event(
                self.ReportRejected,
                report_id=report_id,
                reason=decision.reason or "rejected",
                policy_version=policy_version,
                timestamp=at,
                **trace,
            )
        return self.reports[report_id]

    def report(self, report_id: str) -> ReportState:
        try:
            return self.reports[report_id]
        except KeyError:
            raise NotFound(f"report {report_id} is not in this stream") from None

    def valid_claims(self, moment: datetime) -> list[Claim]:
        return [r.as_claim() for r in self.reports.values() if r.is_valid_at(moment)]
