"""departures: consultants who left (离职) and whether moving their buyers finished."""

from __future__ import annotations

from typing import Any

from domain.departure import Departure
from projections.runtime import Rows, Table

TABLE = Table(
    "departures",
    ("consultant_id",),
    {
        "consultant_id": "text",
        "successor_id": "text",
        "status": "text",  # in_progress | completed
        "moved": "int",
        "started_at": "ts",
        "started_position": "int",
        "completed_at": "ts",
    },
)


class Departures:
    name = "departures"
    tables: tuple[Table, ...] = (TABLE,)

    def handles(self, event: Any) -> bool:
        return isinstance(event, (Departure.Event, Departure.DepartureStarted))

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        if isinstance(event, Departure.DepartureStarted):
            rows.put(
                TABLE.name,
                {
                    "consultant_id": event.consultant_id,
                    "successor_id": event.successor_id,
                    "status": "in_progress",
                    "moved": 0,
                    "started_at": event.timestamp,
                    "started_position": position,
                    "completed_at": None,
                },
            )
            return
        row = rows.get(TABLE.name, event.consultant_id)
        if row is None:
            return
        if isinstance(event, Departure.ClientMoved) and event.outcome != "skipped":
            row["moved"] += 1
        elif isinstance(event, Departure.DepartureCompleted):
            row.update(status="completed", completed_at=event.timestamp)
        rows.put(TABLE.name, row)
