"""Following the notification log into SQL views, one transaction per batch.

Every view's rows and its tracking position are written in the same transaction, so a
crash either keeps a whole batch or none of it: a restart resumes exactly where the
last commit stopped, with nothing counted twice and nothing skipped.

SQLite cannot be subscribed to, and PostgreSQL's LISTEN wakes a follower no sooner
than a short poll does at these rates, so both backends poll the log.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from eventsourcing.application import Application
from psycopg_pool import ConnectionPool

log = logging.getLogger("yingke.projections")

TRACKING = "projection_tracking"


class Tx(Protocol):
    """The slice of a DB-API cursor the views use, with %s placeholders everywhere."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class _SQLiteTx:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(sql.replace("%s", "?"), tuple(params))

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class ViewDB:
    """Where the views live: SQLite in the embedded default, PostgreSQL when scaled."""

    dialect: str

    def transaction(self) -> contextlib.AbstractContextManager[Tx]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.transaction() as tx:
            tx.execute(sql, params)
            return tx.fetchall()


class SQLiteViewDB(ViewDB):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()  # SQLite has one writer; queue them here

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

    def __init__(self, conninfo: str, max_size: int = 5, timeout: float = 5) -> None:
        self._pool = ConnectionPool(
            conninfo, min_size=1, max_size=max_size, open=True, timeout=timeout
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            yield cursor

    def close(self) -> None:
        self._pool.close()


class View(Protocol):
    """One BI table (or a few that answer one question), built from events."""

    name: str

    def create(self, tx: Tx, dialect: str) -> None: ...

    def handles(self, event: Any) -> bool: ...

    def apply(self, tx: Tx, event: Any, position: int) -> None: ...


def create_tracking(tx: Tx) -> None:
    tx.execute(
        f"CREATE TABLE IF NOT EXISTS {TRACKING} (view TEXT PRIMARY KEY, position BIGINT NOT NULL)"
    )


def position_of(tx: Tx, view: str) -> int:
    tx.execute(f"SELECT position FROM {TRACKING} WHERE view = %s", (view,))
    row = tx.fetchone()
    return int(row[0]) if row else 0


def set_position(tx: Tx, view: str, position: int) -> None:
    tx.execute(
        f"INSERT INTO {TRACKING} (view, position) VALUES (%s, %s) "
        "ON CONFLICT (view) DO UPDATE SET position = excluded.position",
        (view, position),
    )


@dataclass
class Follower:
    """Applies new events to a set of views; ``run_once`` handles one batch."""

    app: Application  # type: ignore[type-arg]
    db: ViewDB
    views: Sequence[View]
    batch_size: int = 500

    def migrate(self) -> None:
        with self.db.transaction() as tx:
            create_tracking(tx)
            for view in self.views:
                view.create(tx, self.db.dialect)
                tx.execute(
                    f"INSERT INTO {TRACKING} (view, position) VALUES (%s, 0) "
                    "ON CONFLICT (view) DO NOTHING",
                    (view.name,),
                )

    def positions(self) -> dict[str, int]:
        with self.db.transaction() as tx:
            return {v.name: position_of(tx, v.name) for v in self.views}

    def _lock_positions(self, tx: Tx) -> dict[str, int]:
        """Read positions inside the batch's transaction, locked, so two followers of the
        same views (two API replicas, say) take turns instead of applying a batch twice."""
        lock = " FOR UPDATE" if self.db.dialect == "postgres" else ""
        names = [v.name for v in self.views]
        marks = ", ".join(["%s"] * len(names))
        tx.execute(f"SELECT view, position FROM {TRACKING} WHERE view IN ({marks}){lock}", names)
        found = {str(name): int(pos) for name, pos in tx.fetchall()}
        return {name: found.get(name, 0) for name in names}

    def run_once(self) -> int:
        with self.db.transaction() as tx:
            positions = self._lock_positions(tx)
            start = min(positions.values(), default=0)
            notifications = self.app.recorder.select_notifications(
                start=start, limit=self.batch_size, inclusive_of_start=False
            )
            if not notifications:
                return 0
            last = notifications[-1].id
            for notification in notifications:
                event = self.app.mapper.to_domain_event(notification)
                for view in self.views:
                    if notification.id > positions[view.name] and view.handles(event):
                        view.apply(tx, event, notification.id)
            for view in self.views:
                if last > positions[view.name]:
                    set_position(tx, view.name, last)
        return len(notifications)

    def catch_up(self) -> int:
        total = 0
        while count := self.run_once():
            total += count
        return total

    def lag(self) -> dict[str, int]:
        head = self.app.recorder.max_notification_id() or 0
        return {name: max(0, head - pos) for name, pos in self.positions().items()}

    def wait_for(self, position: int, timeout: float) -> bool:
        """Read-your-writes: True once every view has reached ``position``."""
        deadline = time.monotonic() + timeout
        while True:
            if min(self.positions().values(), default=position) >= position:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


class Loop(threading.Thread):
    """Runs ``step`` every ``interval`` seconds until stopped; errors are logged, not fatal."""

    def __init__(self, name: str, step: Any, interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self._step = step
        self._interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                busy = self._step()
            except (psycopg.Error, sqlite3.Error, OSError) as exc:
                log.warning("%s: %s; retrying", self.name, exc)
                busy = 0
            except Exception:
                log.exception("%s failed; retrying", self.name)
                busy = 0
            if not busy:
                self._stop_event.wait(self._interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
