"""Following the notification log into SQL views.

A view is a reducer: given the rows an event touches, it changes them in memory. The
runtime loads those rows lazily, applies a whole batch of events, then writes every
changed row back together with the view's tracking position in one transaction. A
crash keeps a whole batch or none of it, so a restart resumes exactly where the last
commit stopped: nothing counted twice, nothing skipped.

The same reducers rebuild a view from zero entirely in memory and bulk-load the result
into shadow tables that are swapped in at the end, while the service keeps answering.

Both backends poll the log; a ``Loop`` given a ``wake`` event also starts a step as soon
as it is set (a save committed in this process, or a PostgreSQL notification: see
yingke/wake.py), so the poll is only the fallback for a lost signal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from psycopg_pool import ConnectionPool

from domain.quota import CHINA
from projections.sql import read_ts, ts

log = logging.getLogger("yingke.projections")

TRACKING = "projection_tracking"
Key = tuple[Any, ...]
Row = dict[str, Any]

_SQL_TYPES = {
    "text": ("TEXT", "TEXT"),
    "int": ("BIGINT", "INTEGER"),
    "real": ("DOUBLE PRECISION", "REAL"),
    "ts": ("TIMESTAMPTZ", "TEXT"),
    "bool": ("BOOLEAN", "INTEGER"),
}


class Tx(Protocol):
    """The slice of a DB-API cursor the runtime uses, with %s placeholders everywhere."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


@dataclass(frozen=True)
class Table:
    """A view table: its key, its typed columns (key included) and its indexes."""

    name: str
    key: tuple[str, ...]
    columns: dict[str, str]
    indexes: tuple[tuple[str, ...], ...] = ()
    # Rows sharing the first key column are few (a buyer's slots, a subject's tasks), so
    # a batch may load them all at once. Tables keyed by one column always may; counters
    # keyed by project first may not (a project's rows grow with every day).
    few_per_first_key: bool = False

    @property
    def prefetched(self) -> bool:
        """Whether a batch loads this table's rows up front by the ids its events name."""
        first = self.columns[self.key[0]] == "text"
        return first and (len(self.key) == 1 or self.few_per_first_key)

    @property
    def period(self) -> int | None:
        """For a table keyed by project and then a ``day`` or ``month`` (of an event's
        timestamp), or else an id events name (``consultant_id``): that column's place
        in the key. A batch loads such a table's rows by the projects and the periods
        (or ids) it names, all rows of a (project, period) pair at once."""
        if self.prefetched or self.key[0] != "project_id":
            return None
        for at, column in enumerate(self.key):
            if column in _PERIODS:
                return at
        for at, column in enumerate(self.key[1:], start=1):
            if column.endswith("_id") and self.columns[column] == "text":
                return at
        return None

    def ddl(self, dialect: str, suffix: str = "") -> list[str]:
        pick = 0 if dialect == "postgres" else 1
        cols = ", ".join(f"{c} {_SQL_TYPES[t][pick]}" for c, t in self.columns.items())
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.name}{suffix} "
            f"({cols}, PRIMARY KEY ({', '.join(self.key)}))"
        ]
        statements += [
            f"CREATE INDEX IF NOT EXISTS {self.index_name(i, suffix)} ON {self.name}{suffix} "
            f"({', '.join(cols_)})"
            for i, cols_ in enumerate(self.indexes)
        ]
        return statements

    def index_name(self, i: int, suffix: str = "") -> str:
        return f"{self.name}{suffix}_ix{i}"

    def to_db(self, dialect: str, row: Row) -> list[Any]:
        out = []
        for column, kind in self.columns.items():
            value = row.get(column)
            if kind == "ts":
                value = ts(dialect, value)
            elif kind == "bool" and value is not None and dialect != "postgres":
                value = int(bool(value))
            out.append(value)
        return out

    def from_db(self, values: Sequence[Any]) -> Row:
        row: Row = {}
        for (column, kind), value in zip(self.columns.items(), values, strict=True):
            if kind == "ts":
                value = read_ts(value)
            elif kind == "bool" and value is not None:
                value = bool(value)
            row[column] = value
        return row


class View(Protocol):
    """One question BI asks, answered by one or a few tables built from events."""

    name: str
    tables: tuple[Table, ...]

    def handles(self, event: Any) -> bool: ...

    def apply(self, rows: Rows, event: Any, position: int) -> None: ...


class Rows:
    """The rows a batch touches: loaded on first use, written back by ``flush``.

    With ``tx`` None the rows live only in memory (a rebuild starts from nothing).

    ``prefetch`` loads, in one statement per table, the rows of every id the batch's
    events name, and remembers which of those ids have no row, so that ``get`` asks the
    database only about keys no event named (one SELECT per key was half the follower's
    time, issue 15).
    """

    def __init__(
        self,
        tables: Sequence[Table],
        dialect: str,
        tx: Tx | None = None,
        suffix: str = "",
        batched: bool = True,
    ) -> None:
        self.tables = {t.name: t for t in tables}
        self.batched = batched
        self.dialect = dialect
        self.tx = tx
        self.suffix = suffix
        self.cache: dict[str, dict[Key, Row | None]] = {t.name: {} for t in tables}
        self.dirty: dict[str, set[Key]] = {t.name: set() for t in tables}
        # Values of the first key column whose every row is in ``cache``: a key starting
        # with one of them and not cached has no row.
        self.complete: dict[str, set[Any]] = {t.name: set() for t in tables}
        # For counters keyed by project and period: the (project, period) pairs whose
        # every row is in ``cache``.
        self.complete_periods: dict[str, set[tuple[Any, Any]]] = {t.name: set() for t in tables}

    def get(self, table: str, *key: Any) -> Row | None:
        rows = self.cache[table]
        if key not in rows:
            if self.tx is None or key[0] in self.complete[table] or self._in_period(table, key):
                rows[key] = None
            else:
                rows[key] = self._load(self.tables[table], key)
        return rows[key]

    def _prefetch_queries(self, ids: set[str]) -> list[tuple[str, list[str], str, list[Any]]]:
        """(table, the ids it asks about, SQL, parameters) for each statement to send."""
        queries: list[tuple[str, list[str], str, list[Any]]] = []
        for name, table in self.tables.items():
            wanted = sorted(ids - self.complete[name])
            if not table.prefetched or not wanted:
                continue
            select = f"SELECT {', '.join(table.columns)} FROM {name}{self.suffix} WHERE "
            if self.dialect == "postgres":
                # %b: a binary array; the text one quotes every id through a regex, which
                # cost as much as the query.
                queries.append((name, wanted, f"{select}{table.key[0]} = ANY(%b)", [wanted]))
                continue
            for at in range(0, len(wanted), _SQLITE_CHUNK):
                chunk = wanted[at : at + _SQLITE_CHUNK]
                marks = ", ".join(["%s"] * len(chunk))
                queries.append((name, chunk, f"{select}{table.key[0]} IN ({marks})", chunk))
        return queries

    def _in_period(self, table: str, key: Key) -> bool:
        at = self.tables[table].period
        return at is not None and (key[0], key[at]) in self.complete_periods[table]

    def _period_queries(
        self, events: Sequence[Any], ids: set[str]
    ) -> list[tuple[str, list[tuple[Any, Any]], str, list[Any]]]:
        """(table, the (project, period) pairs it loads, SQL, parameters) for each table
        keyed by project and period: the projects are those the batch's events and the
        rows loaded so far name, the periods their timestamps' days and months, or the
        ids the events name (``named_ids``)."""
        counters = {n: t for n, t in self.tables.items() if t.period is not None}
        if not counters or not events:
            return []
        projects = {e.project_id for e in events if isinstance(getattr(e, "project_id", None), str)}
        for name, cached in self.cache.items():
            if "project_id" in self.tables[name].columns:
                projects.update(r["project_id"] for r in cached.values() if r and r["project_id"])
        moments = {e.timestamp.astimezone(CHINA) for e in events}
        periods = {
            "day": sorted({m.date().isoformat() for m in moments}),
            "month": sorted({m.strftime("%Y-%m") for m in moments}),
        }
        queries: list[tuple[str, list[tuple[Any, Any]], str, list[Any]]] = []
        for name, table in counters.items():
            assert table.period is not None
            column = table.key[table.period]
            within = periods[column] if column in periods else sorted(ids)
            done = self.complete_periods[name]
            wanted = sorted(p for p in projects if any((p, d) not in done for d in within))
            if not wanted:
                continue
            select = f"SELECT {', '.join(table.columns)} FROM {name}{self.suffix} WHERE "
            if self.dialect == "postgres":
                queries.append(
                    (
                        name,
                        [(p, d) for p in wanted for d in within],
                        f"{select}project_id = ANY(%b) AND {column} = ANY(%b)",
                        [wanted, within],
                    )
                )
                continue
            # Both lists chunked: a batch may name thousands of ids.
            half = _SQLITE_CHUNK // 2
            for at in range(0, len(wanted), half):
                chunk = wanted[at : at + half]
                for start in range(0, len(within), half):
                    part = within[start : start + half]
                    queries.append(
                        (
                            name,
                            [(p, d) for p in chunk for d in part],
                            f"{select}project_id IN ({', '.join(['%s'] * len(chunk))}) "
                            f"AND {column} IN ({', '.join(['%s'] * len(part))})",
                            [*chunk, *part],
                        )
                    )
        return queries

    def _take_periods(self, name: str, wanted: list[tuple[Any, Any]], found: list[Any]) -> None:
        table, cache = self.tables[name], self.cache[name]
        for values in found:
            row = table.from_db(values)
            cache.setdefault(tuple(row[k] for k in table.key), row)
        self.complete_periods[name].update(wanted)

    def _take(self, name: str, wanted: list[str], found: list[Any]) -> None:
        table, cache = self.tables[name], self.cache[name]
        for values in found:
            row = table.from_db(values)
            # A row this batch already changed in memory is newer than the stored one.
            cache.setdefault(tuple(row[k] for k in table.key), row)
        self.complete[name].update(wanted)

    def _load(self, table: Table, key: Key) -> Row | None:
        assert self.tx is not None
        where = " AND ".join(f"{k} = %s" for k in table.key)
        columns = ", ".join(table.columns)
        self.tx.execute(
            f"SELECT {columns} FROM {table.name}{self.suffix} WHERE {where}",
            self._key_params(table, key),
        )
        found = self.tx.fetchone()
        return table.from_db(found) if found else None

    def _key_params(self, table: Table, key: Key) -> list[Any]:
        return [
            ts(self.dialect, v) if table.columns[k] == "ts" else v
            for k, v in zip(table.key, key, strict=True)
        ]

    def put(self, table: str, row: Row) -> Row:
        key = tuple(row[k] for k in self.tables[table].key)
        self.cache[table][key] = row
        self.dirty[table].add(key)
        return row

    def upsert(self, table: str, key: Key, defaults: Row) -> Row:
        """The row at ``key``, created from ``defaults`` if missing; marked changed."""
        row = self.get(table, *key)
        if row is None:
            spec = self.tables[table]
            row = {**{c: None for c in spec.columns}, **defaults}
            row.update(zip(spec.key, key, strict=True))
        return self.put(table, row)

    def bump(self, table: str, key: Key, defaults: Row, **increments: int) -> Row:
        row = self.upsert(table, key, defaults)
        for column, by in increments.items():
            row[column] = (row.get(column) or 0) + by
        return row

    def delete(self, table: str, *key: Any) -> None:
        self.cache[table][key] = None
        self.dirty[table].add(key)

    def flush(self) -> None:
        assert self.tx is not None
        for name, keys in self.dirty.items():
            if not keys:
                continue
            table = self.tables[name]
            upserts = [self.cache[name][k] for k in keys if self.cache[name][k] is not None]
            deletes = [k for k in keys if self.cache[name][k] is None]
            target = f"{name}{self.suffix}"
            if deletes:
                where = " AND ".join(f"{k} = %s" for k in table.key)
                self.tx.executemany(
                    f"DELETE FROM {target} WHERE {where}",
                    [self._key_params(table, k) for k in deletes],
                )
            if upserts:
                values = [table.to_db(self.dialect, r) for r in upserts if r]
                if self.dialect == "postgres" and self.batched:
                    # One statement per table, one array per column: executemany runs a
                    # statement per row on the server, and a multi-row VALUES has psycopg
                    # parse thousands of placeholders (a third of the follower's samples).
                    self.tx.execute(_upsert_arrays_sql(table, target), _columns_of(table, values))
                else:
                    self.tx.executemany(_upsert_sql(table, target), values)
            keys.clear()

    def forget_phone(self, client_id: str, mask: str) -> None:
        """After an erasure, no row of this view keeps the buyer's 前三后四: every table
        with a ``client_id`` has its ``phone_masked`` (and a ``facts`` JSON's) replaced.
        One mechanism for every view, so a new table cannot forget it."""
        for name, table in self.tables.items():
            if "client_id" not in table.columns:
                continue
            if "phone_masked" not in table.columns and "facts" not in table.columns:
                continue
            keys = {k for k, r in self.cache[name].items() if r and r["client_id"] == client_id}
            if self.tx is not None:
                self.flush()
                self.tx.execute(
                    f"SELECT {', '.join(table.key)} FROM {name}{self.suffix} WHERE client_id = %s",
                    (client_id,),
                )
                keys |= {_stored_key(table, found) for found in self.tx.fetchall()}
            for key in keys:
                row = self.get(name, *key)
                if row is None:
                    continue
                if "phone_masked" in row and row["phone_masked"] is not None:
                    row["phone_masked"] = mask
                if row.get("facts"):
                    facts = json.loads(row["facts"])
                    if facts.get("phone_masked") is not None:
                        facts["phone_masked"] = mask
                        row["facts"] = json.dumps(
                            facts, ensure_ascii=False, sort_keys=True, default=str
                        )
                self.put(name, row)

    def all_rows(self, table: str) -> list[Row]:
        return [r for r in self.cache[table].values() if r is not None]


# Well under SQLite's bound on parameters per statement (999 before 3.32).
_SQLITE_CHUNK = 500
# The key columns a counter's period may have; ``day_of`` and ``month_of`` of an event's
# timestamp (projections/common.py) give their values.
_PERIODS = ("day", "month")


def named_ids(event: Any) -> set[str]:
    """The ids an event names: its stream and every ``*_id`` field. Views key their
    entity tables by these (``client_id`` is a Client's stream, ``report_id`` a field)."""
    found = {str(event.originator_id)}
    for field_name, value in vars(event).items():
        if field_name.endswith("_id") and isinstance(value, str | UUID):
            found.add(str(value))
    return found


def prefetch_all(tx: Tx, batch: Sequence[tuple[Rows, set[str]]]) -> None:
    """Every view's ``prefetch`` for a batch: one round trip on PostgreSQL."""
    queries = [(rows, query) for rows, ids in batch for query in rows._prefetch_queries(ids)]
    results = _select_all(tx, [(sql, params) for _, (_, _, sql, params) in queries])
    for (rows, (name, wanted, _, _)), found in zip(queries, results, strict=True):
        rows._take(name, wanted, found)


def prefetch_periods(tx: Tx, batch: Sequence[tuple[Rows, Sequence[Any], set[str]]]) -> None:
    """Load every view's counters keyed by project and period for a batch's events, in
    one round trip on PostgreSQL. Run after ``prefetch_all``: the rows it loaded name the
    projects of streams whose events do not (a buyer's events name no project)."""
    queries = [
        (rows, query) for rows, events, ids in batch for query in rows._period_queries(events, ids)
    ]
    results = _select_all(tx, [(sql, params) for _, (_, _, sql, params) in queries])
    for (rows, (name, wanted, _, _)), found in zip(queries, results, strict=True):
        rows._take_periods(name, wanted, found)


def _select_all(tx: Tx, queries: Sequence[tuple[str, list[Any]]]) -> list[list[Any]]:
    if isinstance(tx, psycopg.Cursor) and len(queries) > 1:
        # A cursor per statement, all sent in one pipeline: the follower used to wait on
        # PostgreSQL for each of a batch's ~30 prefetch statements in turn.
        connection = tx.connection
        cursors: list[psycopg.Cursor[Any]] = []
        try:
            with connection.pipeline():
                for sql, params in queries:
                    cursors.append(connection.cursor())
                    cursors[-1].execute(sql, params)
            return [cursor.fetchall() for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()
    results = []
    for sql, params in queries:
        tx.execute(sql, params)
        results.append(tx.fetchall())
    return results


def _stored_key(table: Table, values: Sequence[Any]) -> Key:
    kinds = [table.columns[k] for k in table.key]
    return tuple(read_ts(v) if kind == "ts" else v for v, kind in zip(values, kinds, strict=True))


def _upsert_sql(table: Table, target: str) -> str:
    return _upsert(table, target, f"VALUES ({', '.join(['%s'] * len(table.columns))})")


def _upsert_arrays_sql(table: Table, target: str) -> str:
    """PostgreSQL: the rows come as one binary array per column."""
    arrays = ", ".join(f"%b::{_SQL_TYPES[kind][0]}[]" for kind in table.columns.values())
    return _upsert(table, target, f"SELECT * FROM unnest({arrays})")


def _columns_of(table: Table, rows: list[list[Any]]) -> list[list[Any]]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    for values, kind in zip(columns, table.columns.values(), strict=True):
        if kind == "text":
            # An array holds one type; a stray non-text value becomes text, as PostgreSQL's
            # assignment cast made it when rows went one by one.
            values[:] = [v if v is None or isinstance(v, str) else str(v) for v in values]
    return columns


def _upsert(table: Table, target: str, source: str) -> str:
    columns = list(table.columns)
    updates = [c for c in columns if c not in table.key]
    action = (
        "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updates)
        if updates
        else "DO NOTHING"
    )
    return (
        f"INSERT INTO {target} ({', '.join(columns)}) {source} "
        f"ON CONFLICT ({', '.join(table.key)}) {action}"
    )


# --------------------------------------------------------------------- databases


class _SQLiteTx:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(sql.replace("%s", "?"), tuple(params))

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(sql.replace("%s", "?"), [tuple(p) for p in params])

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class ViewDB:
    """Where the views live: SQLite in the embedded default, PostgreSQL when scaled."""

    dialect: str

    def transaction(self) -> contextlib.AbstractContextManager[Tx]:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.transaction() as tx:
            tx.execute(sql, params)
            return tx.fetchall()

    def bulk_insert(self, tx: Tx, table: Table, target: str, rows: list[Row]) -> None:
        tx.executemany(
            f"INSERT INTO {target} ({', '.join(table.columns)}) "
            f"VALUES ({', '.join(['%s'] * len(table.columns))})",
            [table.to_db(self.dialect, r) for r in rows],
        )

    def close(self) -> None:
        raise NotImplementedError


class SQLiteViewDB(ViewDB):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()  # SQLite has one writer: queue this process's here

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        conn = self._conn()
        with self._lock:
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(cursor)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        # WAL readers see a consistent snapshot without queueing behind the writer.
        return self._conn().execute(sql.replace("%s", "?"), tuple(params)).fetchall()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresViewDB(ViewDB):
    dialect = "postgres"

    def __init__(
        self,
        conninfo: str,
        max_size: int = 5,
        timeout: float = 5,
        check: Callable[[psycopg.Connection[Any]], None] = ConnectionPool.check_connection,
    ) -> None:
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            open=True,
            timeout=timeout,
            # After an outage, pooled connections are dead: test them before use.
            check=check,
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            yield cursor

    def bulk_insert(self, tx: Tx, table: Table, target: str, rows: list[Row]) -> None:
        cursor: Any = tx
        with cursor.copy(f"COPY {target} ({', '.join(table.columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(table.to_db(self.dialect, row))

    def close(self) -> None:
        self._pool.close()


# ---------------------------------------------------------------------- tracking


def create_tracking(tx: Tx) -> None:
    tx.execute(
        f"CREATE TABLE IF NOT EXISTS {TRACKING} (view TEXT PRIMARY KEY, position BIGINT NOT NULL)"
    )


def missing_columns(tx: Tx, dialect: str, table: Table) -> list[str]:
    """Columns ``table`` declares that its stored table lacks (none if not created yet)."""
    if dialect == "postgres":
        tx.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table.name,),
        )
    else:
        tx.execute("SELECT name FROM pragma_table_info(%s)", (table.name,))
    present = {str(r[0]) for r in tx.fetchall()}
    return [c for c in table.columns if c not in present] if present else []


def set_position(tx: Tx, view: str, position: int) -> None:
    set_positions(tx, {view: position})


def set_positions(tx: Tx, positions: dict[str, int]) -> None:
    """Several views' positions in one statement: a batch's last round trip, not one per
    view."""
    if not positions:
        return
    marks = ", ".join(["(%s, %s)"] * len(positions))
    tx.execute(
        f"INSERT INTO {TRACKING} (view, position) VALUES {marks} "
        "ON CONFLICT (view) DO UPDATE SET position = excluded.position",
        [v for item in sorted(positions.items()) for v in item],
    )


def lock_positions(tx: Tx, dialect: str, names: Sequence[str]) -> dict[str, int]:
    """Read positions inside the caller's transaction, locked, so two followers of the
    same views (two API replicas, say) take turns instead of applying a batch twice."""
    # Rows are locked in name order, the same in every process: followers of overlapping
    # view sets (a replica, a rebuild, the Kafka consumer) wait for each other but never
    # deadlock.
    lock = " FOR UPDATE" if dialect == "postgres" else ""
    marks = ", ".join(["%s"] * len(names))
    tx.execute(
        f"SELECT view, position FROM {TRACKING} WHERE view IN ({marks}) ORDER BY view{lock}",
        names,
    )
    found = {str(name): int(pos) for name, pos in tx.fetchall()}
    return {name: found.get(name, 0) for name in names}


# ---------------------------------------------------------------------- follower


@dataclass
class Follower:
    """Applies new events to a set of views; ``run_once`` handles one batch."""

    app: Application  # type: ignore[type-arg]
    db: ViewDB
    views: Sequence[View]
    batch_size: int = 1000
    applied: int = 0
    batched: bool = True  # False: the follower bench's baseline (see apply_batch)

    def migrate(self) -> None:
        with self.db.transaction() as tx:
            create_tracking(tx)
            for view in self.views:
                if any(missing_columns(tx, self.db.dialect, t) for t in view.tables):
                    # A view that gained columns cannot be patched row by row: it starts
                    # again from the beginning of the log, and catches up as it follows.
                    log.warning("view %s gained columns: rebuilding it from zero", view.name)
                    for table in view.tables:
                        tx.execute(f"DROP TABLE IF EXISTS {table.name}")
                    set_position(tx, view.name, 0)
                for table in view.tables:
                    for statement in table.ddl(self.db.dialect):
                        tx.execute(statement)
                tx.execute(
                    f"INSERT INTO {TRACKING} (view, position) VALUES (%s, 0) "
                    "ON CONFLICT (view) DO NOTHING",
                    (view.name,),
                )

    def positions(self) -> dict[str, int]:
        names = [v.name for v in self.views]
        rows = self.db.query(f"SELECT view, position FROM {TRACKING}")
        found = {str(name): int(pos) for name, pos in rows}
        return {name: found.get(name, 0) for name in names}

    def run_once(self) -> int:
        with self.db.transaction() as tx:
            positions = lock_positions(tx, self.db.dialect, [v.name for v in self.views])
            count = apply_batch(
                self.app,
                tx,
                self.db.dialect,
                self.views,
                positions,
                self.batch_size,
                batched=self.batched,
            )
        self.applied += count
        return count

    def catch_up(self) -> int:
        total = 0
        while count := self.run_once():
            total += count
        return total

    def lag(self) -> dict[str, tuple[int, int]]:
        """Per view: (position, events behind the head of the log)."""
        head = self.app.recorder.max_notification_id() or 0
        return {name: (pos, max(0, head - pos)) for name, pos in self.positions().items()}

    def wait_for(self, position: int, timeout: float) -> bool:
        """Read-your-writes: True once every view has reached ``position``."""
        deadline = time.monotonic() + timeout
        while True:
            if min(self.positions().values(), default=position) >= position:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def apply_batch(
    app: Application,  # type: ignore[type-arg]
    tx: Tx,
    dialect: str,
    views: Sequence[View],
    positions: dict[str, int],
    batch_size: int,
    suffix: str = "",
    batched: bool = True,
) -> int:
    """Apply the next batch after ``positions`` and record the new positions in ``tx``.

    ``batched`` False loads rows one key at a time and writes them back one statement
    per row, as before issue 15: the follower bench's baseline."""
    start = min(positions.values(), default=0)
    notifications = app.recorder.select_notifications(
        start=start, limit=batch_size, inclusive_of_start=False
    )
    if not notifications:
        return 0
    events = [(n.id, app.mapper.to_domain_event(n)) for n in notifications]
    ids = [named_ids(e) for _, e in events] if batched else []
    rows = {v.name: Rows(v.tables, dialect, tx, suffix, batched) for v in views}
    # Views share no rows, so applying one view's events after another's gives what
    # applying each event to every view in turn gives.
    mine = {
        v.name: [i for i, (at, e) in enumerate(events) if at > positions[v.name] and v.handles(e)]
        for v in views
    }
    if batched:
        named = {v.name: set().union(*(ids[i] for i in mine[v.name])) for v in views}
        prefetch_all(tx, [(rows[v.name], named[v.name]) for v in views])
        prefetch_periods(
            tx, [(rows[v.name], [events[i][1] for i in mine[v.name]], named[v.name]) for v in views]
        )
    for view in views:
        for i in mine[view.name]:
            at, event = events[i]
            view.apply(rows[view.name], event, at)
    last = notifications[-1].id
    moved = {v.name: last for v in views if last > positions[v.name]}
    with _pipelined(tx) if batched else contextlib.nullcontext():
        for view in views:
            rows[view.name].flush()
        set_positions(tx, moved)
    positions.update(moved)
    return len(notifications)


@contextlib.contextmanager
def _pipelined(tx: Tx) -> Iterator[None]:
    """On a psycopg cursor, send statements whose results nobody reads in one round trip
    (the follower waited on PostgreSQL for each of a batch's ~50 writes in turn)."""
    if isinstance(tx, psycopg.Cursor):
        with tx.connection.pipeline():
            yield
    else:
        yield


# ----------------------------------------------------------------------- rebuild


@dataclass
class RebuildReport:
    view: str
    events: int
    seconds: float
    position: int
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def rebuild(
    app: Application,  # type: ignore[type-arg]
    db: ViewDB,
    view: View,
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> RebuildReport:
    """Replay the whole log into shadow tables, then swap them in.

    Readers keep reading the old tables until the swap; the swap transaction holds the
    view's tracking row, so the live follower waits for it and then carries on from
    the rebuilt position.
    """
    started = time.perf_counter()
    suffix = "__shadow"
    memory = Rows(view.tables, db.dialect)
    position, events = 0, 0
    while True:
        notifications = app.recorder.select_notifications(
            start=position, limit=batch_size, inclusive_of_start=False
        )
        if not notifications:
            break
        for notification in notifications:
            event = app.mapper.to_domain_event(notification)
            if view.handles(event):
                view.apply(memory, event, notification.id)
        position = notifications[-1].id
        events += len(notifications)
        if progress is not None:
            progress(events)
    with db.transaction() as tx:
        for table in view.tables:
            tx.execute(f"DROP TABLE IF EXISTS {table.name}{suffix}")
            for statement in table.ddl(db.dialect, suffix)[:1]:
                tx.execute(statement)
            db.bulk_insert(tx, table, f"{table.name}{suffix}", memory.all_rows(table.name))
    with db.transaction() as tx:
        positions = lock_positions(tx, db.dialect, [view.name])
        positions[view.name] = position
        while count := apply_batch(app, tx, db.dialect, [view], positions, batch_size, suffix):
            events += count
        for table in view.tables:
            tx.execute(f"DROP TABLE IF EXISTS {table.name}")
            tx.execute(f"ALTER TABLE {table.name}{suffix} RENAME TO {table.name}")
            for statement in table.ddl(db.dialect)[1:]:
                tx.execute(statement)
        set_position(tx, view.name, positions[view.name])
    # Fresh tables carry no statistics until autovacuum gets round to them; meanwhile the
    # planner guesses, and picked the wrong index for /v1/tasks (9.7 ms instead of 0.14).
    with db.transaction() as tx:
        for table in view.tables:
            tx.execute(f"ANALYZE {table.name}")
    counts = {t.name: len(memory.all_rows(t.name)) for t in view.tables}
    return RebuildReport(
        view.name, events, time.perf_counter() - started, positions[view.name], counts
    )


class LoopObserver(Protocol):
    """Told of every step's outcome (yingke.metrics.Metrics)."""

    def succeeded(self, loop: str, *, interval: float | None = None) -> None: ...

    def failed(
        self, loop: str, error: str | None = None, *, interval: float | None = None
    ) -> None: ...


class Loop(threading.Thread):
    """Runs ``step`` every ``interval`` seconds until stopped; errors are logged, not fatal.

    With ``wake``, a step also starts as soon as the event is set, after ``coalesce``
    seconds in which more commits may arrive, so that one batch carries them all. A step
    that did less than ``full`` left nothing behind: the loop then waits (a commit during
    the step has set ``wake`` already) rather than asking again at once."""

    def __init__(
        self,
        name: str,
        step: Callable[[], int],
        interval: float,
        observer: LoopObserver | None = None,
        wake: threading.Event | None = None,
        coalesce: float = 0.0,
        full: int = 1,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._step = step
        self._interval = interval
        self._observer = observer
        self._wake = wake
        self._coalesce = coalesce
        self._full = full
        self._stop_event = threading.Event()
        self.last_error: str | None = None
        self.last_success: datetime | None = None

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                busy = self._step()
            except (psycopg.Error, sqlite3.Error, OSError) as exc:
                log.warning("%s: %s; retrying", self.name, exc)
                self._failed(str(exc))
                busy = 0
            except Exception as exc:
                log.exception("%s failed; retrying", self.name)
                self._failed(repr(exc))
                busy = 0
            else:
                self.last_error = None
                self.last_success = datetime.now(UTC)
                if self._observer is not None:
                    self._observer.succeeded(self.name, interval=self._interval)
            if busy < self._full:
                self._idle()

    def _idle(self) -> None:
        if self._wake is None:
            self._stop_event.wait(self._interval)
            return
        woken = self._wake.wait(self._interval)
        # Cleared before the step reads the log: a commit after this sets it again, and
        # one before it is read by the step.
        self._wake.clear()
        if woken and self._coalesce > 0:
            self._stop_event.wait(self._coalesce)

    def _failed(self, error: str) -> None:
        self.last_error = error
        if self._observer is not None:
            self._observer.failed(self.name, error, interval=self._interval)

    def stop(self) -> None:
        self._stop_event.set()
        if self._wake is not None:
            self._wake.set()
        self.join(timeout=10)
