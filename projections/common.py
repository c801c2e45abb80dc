"""Small pieces several views share: which project a stream belongs to, business days."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.client import Client
from domain.masked_pool import MaskedReportPool
from domain.quota import CHINA
from projections.runtime import Rows, Table

STARTS_STREAM = (Client.ClientRegistered, MaskedReportPool.PoolOpened)


def stream_table(view: str) -> Table:
    """Client and masked-pool events do not repeat their project: a view that needs it
    remembers each stream's project from the stream's first event."""
    return Table(
        f"{view}__streams",
        ("stream_id",),
        {"stream_id": "text", "project_id": "text"},
    )


def remember_stream(rows: Rows, table: Table, event: Any) -> None:
    rows.put(table.name, {"stream_id": str(event.originator_id), "project_id": event.project_id})


def project_of(rows: Rows, table: Table, event: Any) -> str:
    row = rows.get(table.name, str(event.originator_id))
    return str(row["project_id"]) if row else ""


def day_of(moment: datetime) -> str:
    """The business day on China Standard Time, the calendar a sales office keeps."""
    return moment.astimezone(CHINA).date().isoformat()


def month_of(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m")
