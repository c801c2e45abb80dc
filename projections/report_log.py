"""report_log: every report (报备) ever filed and where it ended up. One row per report.

The deadline processor reads it to find reports whose validity has run out.
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from domain.masked_pool import MaskedReportPool
from domain.reports import ReportBook
from domain.values import ERASED_PHONE_MASK
from projections.common import STARTS_STREAM, day_of, project_of, remember_stream, stream_table
from projections.runtime import Rows, Table

TABLE = Table(
    "report_log",
    ("report_id",),
    {
        "report_id": "text",
        "project_id": "text",
        "stream_id": "text",
        "client_id": "text",
        "partner_id": "text",
        "agent_id": "text",
        "masked": "bool",
        "phone_masked": "text",
        "status": "text",  # accepted | rejected | confirmed | closed | expired
        "reason": "text",
        "filed_at": "ts",
        "filed_day": "text",
        "valid_until": "ts",
        "expected_visit_at": "ts",
        "decided_at": "ts",
        "policy_version": "int",
    },
    indexes=(
        ("status", "valid_until"),
        ("partner_id", "filed_at"),
        ("project_id", "filed_at"),
        ("client_id",),
    ),
)
STREAMS = stream_table("report_log")
# Each buyer's reports (their own and the masked ones matched to them), so that an
# erasure can blank the masked phone on every one of them.
CLIENT_REPORTS = Table(
    "report_log__clients",
    ("client_id",),
    {"client_id": "text", "report_ids": "text"},  # space-separated
)


class ReportLog:
    name = "report_log"
    tables: tuple[Table, ...] = (TABLE, STREAMS, CLIENT_REPORTS)

    def handles(self, event: Any) -> bool:
        return isinstance(event, (ReportBook.Event, *STARTS_STREAM))

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        if isinstance(event, STARTS_STREAM):
            remember_stream(rows, STREAMS, event)
            return
        if isinstance(event, Client.PersonalDataErased):
            self._erase(rows, str(event.originator_id))
            return
        if isinstance(event, ReportBook.ReportFiled):
            is_client = isinstance(event, Client.Event)
            if is_client:
                _belongs(rows, str(event.originator_id), event.report_id)
            rows.put(
                TABLE.name,
                {
                    "report_id": event.report_id,
                    "project_id": project_of(rows, STREAMS, event),
                    "stream_id": str(event.originator_id),
                    "client_id": str(event.originator_id) if is_client else None,
                    "partner_id": event.partner_id,
                    "agent_id": event.agent_id,
                    "masked": event.masked,
                    "phone_masked": event.phone_masked,
                    "status": "filed",
                    "reason": None,
                    "filed_at": event.timestamp,
                    "filed_day": day_of(event.timestamp),
                    "valid_until": None,
                    "expected_visit_at": event.expected_visit_at,
                    "decided_at": None,
                    "policy_version": event.policy_version,
                },
            )
            return
        report_id = getattr(event, "report_id", None)
        row = rows.get(TABLE.name, report_id) if report_id else None
        if row is None:
            return
        change: dict[str, Any] | None = None
        if isinstance(event, ReportBook.ReportAccepted):
            change = {"status": "accepted", "valid_until": event.valid_until}
        elif isinstance(event, ReportBook.ReportRejected):
            change = {"status": "rejected", "reason": event.reason}
        elif isinstance(event, ReportBook.ReportExpired):
            change = {"status": "expired"}
        elif isinstance(event, Client.ReportConfirmed):
            change = {"status": "confirmed", "client_id": str(event.originator_id)}
            _belongs(rows, str(event.originator_id), report_id)
        elif isinstance(event, Client.ReportClosed):
            change = {"status": "closed", "reason": event.reason}
        elif isinstance(event, MaskedReportPool.MaskedReportConsumed):
            change = {"status": "confirmed", "client_id": str(event.client_id)}
            _belongs(rows, str(event.client_id), report_id)
        if change is not None:
            row.update(change, decided_at=event.timestamp)
            rows.put(TABLE.name, row)

    @staticmethod
    def _erase(rows: Rows, client_id: str) -> None:
        mine = rows.get(CLIENT_REPORTS.name, client_id)
        for report_id in (mine["report_ids"] or "").split() if mine else []:
            row = rows.get(TABLE.name, report_id)
            if row is not None:
                rows.put(TABLE.name, {**row, "phone_masked": ERASED_PHONE_MASK})


def _belongs(rows: Rows, client_id: str, report_id: str | None) -> None:
    if not report_id:
        return
    mine = rows.get(CLIENT_REPORTS.name, client_id)
    ids = (mine["report_ids"] or "").split() if mine else []
    if report_id not in ids:
        joined = " ".join([*ids, report_id])
        rows.put(CLIENT_REPORTS.name, {"client_id": client_id, "report_ids": joined})
