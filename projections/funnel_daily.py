"""funnel_daily: reported → visited → subscribed → signed → lost, per project, channel
kind, partner and day. Natural visits (自然到访) appear with channel_kind "natural".

A deal counts as subscribed (认购) and signed (签约) once each, for the partner it is
attributed to at that moment (a ruling may have moved it), on the day it happened.
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from domain.deal import Deal
from domain.reports import ReportBook
from projections.common import STARTS_STREAM, day_of, project_of, remember_stream, stream_table
from projections.runtime import Rows, Table

STAGES = ("reported", "visited", "subscribed", "signed", "lost")
TABLE = Table(
    "funnel_daily",
    ("project_id", "channel_kind", "partner_id", "day"),
    {
        "project_id": "text",
        "channel_kind": "text",
        "partner_id": "text",
        "day": "text",
        **dict.fromkeys(STAGES, "int"),
    },
    indexes=(("project_id", "day"),),
)
STREAMS = stream_table("funnel_daily")
REPORTS = Table(
    "funnel_daily__reports", ("report_id",), {"report_id": "text", "partner_id": "text"}
)
VISITED = Table("funnel_daily__visited", ("client_id",), {"client_id": "text"})
DEALS = Table(
    "funnel_daily__deals",
    ("deal_id",),
    {
        "deal_id": "text",
        "project_id": "text",
        "partner_id": "text",
        "subscribed": "bool",
        "signed": "bool",
    },
)
_DEAL_EVENTS = (
    Deal.DealOpened,
    Deal.DealReattributed,
    Deal.SubscriptionSigned,
    Deal.ContractSigned,
)


def count_stage(rows: Rows, project: str, partner: str | None, event: Any, stage: str) -> None:
    kind = "channel" if partner else "natural"
    key = (project, kind, partner or "", day_of(event.timestamp))
    rows.bump(TABLE.name, key, dict.fromkeys(STAGES, 0), **{stage: 1})


class FunnelDaily:
    name = "funnel_daily"
    tables: tuple[Table, ...] = (TABLE, STREAMS, REPORTS, VISITED, DEALS)

    def handles(self, event: Any) -> bool:
        return isinstance(event, (ReportBook.Event, *STARTS_STREAM, *_DEAL_EVENTS))

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        if isinstance(event, _DEAL_EVENTS):
            self._deal(rows, event)
        elif isinstance(event, STARTS_STREAM):
            remember_stream(rows, STREAMS, event)
        elif isinstance(event, ReportBook.ReportFiled):
            rows.put(REPORTS.name, {"report_id": event.report_id, "partner_id": event.partner_id})
        elif isinstance(event, ReportBook.ReportAccepted):
            report = rows.get(REPORTS.name, event.report_id)
            if report is not None:
                # A masked report's pool knows its project too: PoolOpened was remembered.
                count_stage(
                    rows, project_of(rows, STREAMS, event), report["partner_id"], event, "reported"
                )
        elif isinstance(event, Client.OwnershipAwarded):
            # A buyer enters "visited" once: their first deciding visit.
            client_id = str(event.originator_id)
            if rows.get(VISITED.name, client_id) is None:
                rows.put(VISITED.name, {"client_id": client_id})
                count_stage(
                    rows, project_of(rows, STREAMS, event), event.partner_id, event, "visited"
                )
        elif isinstance(event, Client.ReleasedToPool) and event.reason == "lost":
            count_stage(
                rows, project_of(rows, STREAMS, event), event.previous_partner_id, event, "lost"
            )

    @staticmethod
    def _deal(rows: Rows, event: Any) -> None:
        deal_id = str(event.originator_id)
        if isinstance(event, Deal.DealOpened):
            rows.put(
                DEALS.name,
                {
                    "deal_id": deal_id,
                    "project_id": event.project_id,
                    "partner_id": event.partner_id,
                    "subscribed": False,
                    "signed": False,
                },
            )
            return
        deal = rows.get(DEALS.name, deal_id)
        if deal is None:
            return
        rows.put(DEALS.name, deal)
        if isinstance(event, Deal.DealReattributed):
            deal["partner_id"] = event.partner_id
            return
        stage = "subscribed" if isinstance(event, Deal.SubscriptionSigned) else "signed"
        if not deal[stage]:
            deal[stage] = True
            count_stage(rows, deal["project_id"], deal["partner_id"], event, stage)
