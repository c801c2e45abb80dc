"""departures: consultants who left (离职) and whether moving their buyers finished."""

from __future__ import annotations

from typing import Any

from domain.departure import Departure
from projections.runtime import Tx
from projections.sql import ts, ts_type

TABLE = "departures"


class Departures:
    name = TABLE

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def create(self, tx: Tx, dialect: str) -> None:
        t = ts_type(dialect)
        tx.execute(
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                consultant_id TEXT PRIMARY KEY,
                successor_id TEXT,
                status TEXT NOT NULL,
                moved INTEGER NOT NULL DEFAULT 0,
                started_at {t} NOT NULL,
                started_position BIGINT NOT NULL,
                completed_at {t}
            )"""
        )

    def handles(self, event: Any) -> bool:
        return isinstance(event, (Departure.Event, Departure.DepartureStarted))

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        d = self.dialect
        if isinstance(event, Departure.DepartureStarted):
            tx.execute(
                f"INSERT INTO {TABLE} (consultant_id, successor_id, status, started_at, "
                "started_position) VALUES (%s, %s, 'in_progress', %s, %s) "
                "ON CONFLICT (consultant_id) DO NOTHING",
                (event.consultant_id, event.successor_id, ts(d, event.timestamp), position),
            )
        elif isinstance(event, Departure.ClientMoved) and event.outcome != "skipped":
            tx.execute(
                f"UPDATE {TABLE} SET moved = moved + 1 WHERE consultant_id = %s",
                (event.consultant_id,),
            )
        elif isinstance(event, Departure.DepartureCompleted):
            tx.execute(
                f"UPDATE {TABLE} SET status = 'completed', completed_at = %s "
                "WHERE consultant_id = %s",
                (ts(d, event.timestamp), event.consultant_id),
            )
