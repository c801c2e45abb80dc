"""report_log: every report (报备) ever filed and where it ended up. One row per report.

The deadline processor reads it to find reports whose validity has run out.
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from domain.masked_pool import MaskedReportPool
from domain.quota import CHINA
from domain.reports import ReportBook
from projections.runtime import Tx
from projections.sql import bool_type, ts, ts_type

TABLE = "report_log"


class ReportLog:
    name = TABLE

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def create(self, tx: Tx, dialect: str) -> None:
        t = ts_type(dialect)
        tx.execute(
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                report_id TEXT PRIMARY KEY,
                project_id TEXT,
                stream_id TEXT NOT NULL,
                client_id TEXT,
                partner_id TEXT NOT NULL,
                agent_id TEXT NOT NULL,
                masked {bool_type(dialect)} NOT NULL,
                phone_masked TEXT NOT NULL,
                status TEXT NOT NULL,
                reason TEXT,
                filed_at {t} NOT NULL,
                filed_day TEXT NOT NULL,
                valid_until {t},
                expected_visit_at {t},
                decided_at {t},
                policy_version INTEGER NOT NULL
            )"""
        )
        tx.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_due ON {TABLE} (status, valid_until)")
        tx.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_partner ON {TABLE} (partner_id, filed_at)")
        tx.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_client ON {TABLE} (client_id)")
        # Report events do not repeat their project: remember each stream's once.
        tx.execute(
            "CREATE TABLE IF NOT EXISTS report_streams "
            "(stream_id TEXT PRIMARY KEY, project_id TEXT NOT NULL)"
        )

    def handles(self, event: Any) -> bool:
        return isinstance(
            event, (ReportBook.Event, Client.ClientRegistered, MaskedReportPool.PoolOpened)
        )

    def _status(self, tx: Tx, event: Any, status: str, **columns: Any) -> None:
        columns = {"status": status, "decided_at": ts(self.dialect, event.timestamp), **columns}
        assignments = ", ".join(f"{k} = %s" for k in columns)
        tx.execute(
            f"UPDATE {TABLE} SET {assignments} WHERE report_id = %s",
            (*columns.values(), event.report_id),
        )

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        d = self.dialect
        if isinstance(event, (Client.ClientRegistered, MaskedReportPool.PoolOpened)):
            tx.execute(
                "INSERT INTO report_streams (stream_id, project_id) VALUES (%s, %s) "
                "ON CONFLICT (stream_id) DO NOTHING",
                (str(event.originator_id), event.project_id),
            )
        elif isinstance(event, ReportBook.ReportFiled):
            is_client = isinstance(event, Client.Event)
            tx.execute(
                "SELECT project_id FROM report_streams WHERE stream_id = %s",
                (str(event.originator_id),),
            )
            row = tx.fetchone()
            tx.execute(
                f"INSERT INTO {TABLE} (report_id, project_id, stream_id, client_id, partner_id, "
                "agent_id, masked, phone_masked, status, filed_at, filed_day, "
                "expected_visit_at, policy_version) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'filed', %s, %s, %s, %s) "
                "ON CONFLICT (report_id) DO NOTHING",
                (
                    event.report_id,
                    row[0] if row else None,
                    str(event.originator_id),
                    str(event.originator_id) if is_client else None,
                    event.partner_id,
                    event.agent_id,
                    event.masked,
                    event.phone_masked,
                    ts(d, event.timestamp),
                    day_of(event.timestamp),
                    ts(d, event.expected_visit_at),
                    event.policy_version,
                ),
            )
        elif isinstance(event, ReportBook.ReportAccepted):
            self._status(tx, event, "accepted", valid_until=ts(d, event.valid_until))
        elif isinstance(event, ReportBook.ReportRejected):
            self._status(tx, event, "rejected", reason=event.reason)
        elif isinstance(event, ReportBook.ReportExpired):
            self._status(tx, event, "expired")
        elif isinstance(event, Client.ReportConfirmed):
            self._status(tx, event, "confirmed", client_id=str(event.originator_id))
        elif isinstance(event, Client.ReportClosed):
            self._status(tx, event, "closed", reason=event.reason)
        elif isinstance(event, MaskedReportPool.MaskedReportConsumed):
            self._status(tx, event, "confirmed", client_id=str(event.client_id))


def day_of(moment: Any) -> str:
    """The business day in China Standard Time, the calendar the sales office keeps."""
    return str(moment.astimezone(CHINA).date().isoformat())
