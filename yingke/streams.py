"""Which event streams exist, many ids in one query: the adapter behind the client
import's ``existing`` port, so checking 50,000 buyers is a few queries, not 50,000."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

CHUNK = 500  # SQLite allows 999 parameters per statement


def existing_streams(recorder: Any) -> Callable[[Sequence[uuid.UUID]], set[uuid.UUID]] | None:
    """A lookup for the recorder's backend, or None (callers then read stream by stream)."""
    table = getattr(recorder, "events_table_name", None)
    if isinstance(recorder, PostgresApplicationRecorder):

        def postgres(ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
            found: set[uuid.UUID] = set()
            with recorder.datastore.transaction(commit=False) as curs:
                curs.execute(
                    f"SELECT DISTINCT originator_id FROM {table} WHERE originator_id = ANY(%s)",
                    (list(ids),),
                )
                for row in curs.fetchall():
                    found.add(uuid.UUID(str(row["originator_id"])))
            return found

        return postgres
    if isinstance(recorder, SQLiteApplicationRecorder):

        def sqlite(ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
            found: set[uuid.UUID] = set()
            for start in range(0, len(ids), CHUNK):
                part = [i.hex for i in ids[start : start + CHUNK]]
                marks = ", ".join("?" * len(part))
                with recorder.datastore.transaction(commit=False) as curs:
                    curs.execute(
                        f"SELECT DISTINCT originator_id FROM {table} "
                        f"WHERE originator_id IN ({marks})",
                        part,
                    )
                    found.update(uuid.UUID(str(r[0])) for r in curs.fetchall())
            return found

        return sqlite
    return None
