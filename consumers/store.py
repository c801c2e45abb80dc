"""Tables the consumers own, created by the consumers themselves.

Several processes creating tables at once race on PostgreSQL ("tuple concurrently
updated"), so the DDL runs under a transaction-scoped advisory lock: starters queue,
the first creates, the rest find the tables there.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from projections.runtime import ViewDB

DDL_LOCK = zlib.crc32(b"yingke.consumers.ddl")


def lock_key(name: str) -> int:
    """A stable 32-bit advisory-lock key for ``name`` (fits PostgreSQL's bigint)."""
    return zlib.crc32(name.encode())


def create_tables(db: ViewDB, statements: Sequence[str]) -> None:
    with db.transaction() as tx:
        if db.dialect == "postgres":
            tx.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
        for statement in statements:
            tx.execute(statement)


def timestamp_type(db: ViewDB) -> str:
    return "TIMESTAMPTZ" if db.dialect == "postgres" else "TEXT"
