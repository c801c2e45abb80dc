"""channel_performance: how does each channel (渠道) perform, per project and day?

Reports filed, accepted, rejected by reason, confirmed by a visit, expired, the
visits that ended in the channel's attribution, and later the deals attributed to the
channel (opened, cancelled) and its commission entries (accrued, reversed) in fen.
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from domain.deal import Deal
from domain.reports import ReportBook
from projections.common import STARTS_STREAM, day_of, project_of, remember_stream, stream_table
from projections.runtime import Rows, Table

COUNTERS = (
    "reports_filed",
    "accepted",
    "rejected",
    "rejected_protected",
    "rejected_duplicate",
    "rejected_masked_not_allowed",
    "rejected_other",
    "confirmed",
    "expired",
    "closed",
    "attributed_visits",
    "deals",
    "deals_cancelled",
    "commission_accrued_fen",
    "commission_reversed_fen",
)
TABLE = Table(
    "channel_performance",
    ("project_id", "partner_id", "day"),
    {"project_id": "text", "partner_id": "text", "day": "text", **dict.fromkeys(COUNTERS, "int")},
    indexes=(("partner_id", "day"),),
)
STREAMS = stream_table("channel_performance")
REPORTS = Table(
    "channel_performance__reports",
    ("report_id",),
    {"report_id": "text", "project_id": "text", "partner_id": "text"},
)
DEALS = Table(
    "channel_performance__deals",
    ("deal_id",),
    {"deal_id": "text", "project_id": "text", "partner_id": "text"},
)
_REJECTIONS = ("protected", "duplicate", "masked_not_allowed")
_DEAL_EVENTS = (
    Deal.DealOpened,
    Deal.DealReattributed,
    Deal.DealCancelled,
    Deal.CommissionAccrued,
    Deal.CommissionReversed,
)


class ChannelPerformance:
    name = "channel_performance"
    tables: tuple[Table, ...] = (TABLE, STREAMS, REPORTS, DEALS)

    def handles(self, event: Any) -> bool:
        return isinstance(event, (ReportBook.Event, *STARTS_STREAM, *_DEAL_EVENTS))

    def _count(self, rows: Rows, project: str, partner: str, event: Any, **by: int) -> None:
        key = (project, partner, day_of(event.timestamp))
        rows.bump(TABLE.name, key, dict.fromkeys(COUNTERS, 0), **by)

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        if isinstance(event, _DEAL_EVENTS):
            self._deal(rows, event)
            return
        if isinstance(event, STARTS_STREAM):
            remember_stream(rows, STREAMS, event)
            return
        if isinstance(event, ReportBook.ReportFiled):
            project = project_of(rows, STREAMS, event)
            rows.put(
                REPORTS.name,
                {
                    "report_id": event.report_id,
                    "project_id": project,
                    "partner_id": event.partner_id,
                },
            )
            self._count(rows, project, event.partner_id, event, reports_filed=1)
            return
        if isinstance(event, Client.OwnershipAwarded):
            if event.partner_id:
                project = project_of(rows, STREAMS, event)
                self._count(rows, project, event.partner_id, event, attributed_visits=1)
            return
        report = rows.get(REPORTS.name, getattr(event, "report_id", ""))
        if report is None:
            return
        project, partner = report["project_id"], report["partner_id"]
        if isinstance(event, ReportBook.ReportAccepted):
            self._count(rows, project, partner, event, accepted=1)
        elif isinstance(event, ReportBook.ReportRejected):
            reason = event.reason if event.reason in _REJECTIONS else "other"
            self._count(rows, project, partner, event, rejected=1, **{f"rejected_{reason}": 1})
        elif isinstance(event, ReportBook.ReportExpired):
            self._count(rows, project, partner, event, expired=1)
        elif isinstance(event, Client.ReportClosed):
            self._count(rows, project, partner, event, closed=1)
        elif isinstance(event, Client.ReportConfirmed):
            # Masked winners are confirmed here too (their pool only marks them consumed).
            self._count(rows, project, partner, event, confirmed=1)

    def _deal(self, rows: Rows, event: Any) -> None:
        deal_id = str(event.originator_id)
        if isinstance(event, Deal.DealOpened):
            rows.put(
                DEALS.name,
                {
                    "deal_id": deal_id,
                    "project_id": event.project_id,
                    "partner_id": event.partner_id,
                },
            )
            if event.partner_id:
                self._count(rows, event.project_id, event.partner_id, event, deals=1)
            return
        deal = rows.get(DEALS.name, deal_id)
        if deal is None:
            return
        project = deal["project_id"]
        if isinstance(event, Deal.DealReattributed):
            rows.put(DEALS.name, {**deal, "partner_id": event.partner_id})
        elif isinstance(event, Deal.DealCancelled):
            if deal["partner_id"]:
                self._count(rows, project, deal["partner_id"], event, deals_cancelled=1)
        elif event.payee_kind == "channel":
            column = (
                "commission_accrued_fen"
                if isinstance(event, Deal.CommissionAccrued)
                else "commission_reversed_fen"
            )
            self._count(rows, project, event.payee_id, event, **{column: event.amount})
