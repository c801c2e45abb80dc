"""Every worker loop's state in one shared table, so any process can show every loop.

A loop's ``last_error`` and last success live in the memory of the process that runs it;
with ``serve --workers N`` (the loops run in the supervisor, which answers no HTTP) and
in the scaled topology (``yingke projections``, ``deadlines``, ``relay``, ``consume``)
that is never the process answering ``GET /v1/views/status``. So each process also
upserts its loops' state into ``yingke_loop_status`` in the views database (the store's
PostgreSQL when scaled, the SQLite views file when embedded), keyed by loop and process.

Writing is cheap and can never hurt the loop: at most once a second per loop, plus at
once on every error/recovery transition; a failed write is logged and counted
(``yingke_loop_status_write_failures_total``), never raised. A row whose ``updated_at``
is older than a few of its loop's intervals is shown ``stale``: a worker that died shows
as stale instead of vanishing. A loop stopped cleanly deletes its row.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from projections.runtime import ViewDB

log = logging.getLogger("yingke.loop_status")

TABLE = "yingke_loop_status"
# A loop writes at most this often while nothing changes (seconds).
WRITE_EVERY = 1.0
# Stale: not updated for this many intervals of the loop, and at least STALE_FLOOR
# seconds (a loop writes once a second at most, a busy step may take a while).
STALE_INTERVALS = 3
STALE_FLOOR = 15.0
# Loops without a fixed interval (the relay, the Kafka consumers) are stale after this.
STALE_DEFAULT = 60.0


def process_identity() -> str:
    """``host:pid``: which process runs a loop (a container's hostname names the worker)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def migrate(views: ViewDB) -> None:
    stamp = "TIMESTAMPTZ" if views.dialect == "postgres" else "TEXT"
    real = "DOUBLE PRECISION" if views.dialect == "postgres" else "REAL"
    with views.transaction() as tx:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            "loop TEXT NOT NULL, process TEXT NOT NULL, "
            f"started_at {stamp} NOT NULL, last_success {stamp}, last_error TEXT, "
            f"last_error_at {stamp}, runs BIGINT NOT NULL, errors BIGINT NOT NULL, "
            f"interval_seconds {real}, updated_at {stamp} NOT NULL, "
            "PRIMARY KEY (loop, process))"
        )


@dataclass
class _State:
    started_at: datetime
    interval: float | None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    runs: int = 0
    errors: int = 0
    written: float | None = None  # monotonic time of the last write, None: never


class LoopStatus:
    """This process's loops, written to the shared table (``record``) and read back."""

    def __init__(self, views: ViewDB, process: str | None = None) -> None:
        self.views = views
        self.process = process or process_identity()
        self.write_failures = 0
        self._writes_failing = False
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._on_write_failure: list[Any] = []

    def on_write_failure(self, callback: Any) -> None:
        self._on_write_failure.append(callback)

    def record(
        self, loop: str, error: str | None = None, *, ok: bool, interval: float | None = None
    ) -> None:
        """One step of ``loop`` ended: ``ok``, or failed with ``error``."""
        now = datetime.now(UTC)
        with self._lock:
            state = self._states.get(loop)
            if state is None:
                state = self._states[loop] = _State(started_at=now, interval=interval)
            if interval is not None:
                state.interval = interval
            was_failing = state.last_error is not None
            if ok:
                state.runs += 1
                state.last_success = now
                state.last_error = None
            else:
                state.errors += 1
                state.last_error = error or "failed"
                state.last_error_at = now
            transition = was_failing != (not ok)
            due = state.written is None or time.monotonic() - state.written >= WRITE_EVERY
            if not (transition or due):
                return
            state.written = time.monotonic()
            row = (
                loop,
                self.process,
                state.started_at,
                state.last_success,
                state.last_error,
                state.last_error_at,
                state.runs,
                state.errors,
                state.interval,
                now,
            )
        self._write(row)

    def _write(self, row: tuple[Any, ...]) -> None:
        if self.views.dialect != "postgres":
            row = tuple(v.isoformat() if isinstance(v, datetime) else v for v in row)
        try:
            with self.views.transaction() as tx:
                tx.execute(
                    f"INSERT INTO {TABLE} (loop, process, started_at, last_success, "
                    "last_error, last_error_at, runs, errors, interval_seconds, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (loop, process) DO UPDATE SET "
                    "started_at = excluded.started_at, last_success = excluded.last_success, "
                    "last_error = excluded.last_error, last_error_at = excluded.last_error_at, "
                    "runs = excluded.runs, errors = excluded.errors, "
                    "interval_seconds = excluded.interval_seconds, "
                    "updated_at = excluded.updated_at",
                    row,
                )
        except Exception as exc:
            # The loop's own work matters more than its report: never raise from here.
            # Said once per outage (a missing table would otherwise log every second).
            self.write_failures += 1
            if not self._writes_failing:
                log.warning("loop status of %s not written: %s", row[0], exc)
            self._writes_failing = True
            for callback in self._on_write_failure:
                callback()
        else:
            if self._writes_failing:
                log.warning("loop status written again")
            self._writes_failing = False

    def forget(self) -> None:
        """This process stops its loops cleanly: its rows go (a killed one stays stale)."""
        with self._lock:
            loops = list(self._states)
            self._states.clear()
        if not loops:
            return
        try:
            with self.views.transaction() as tx:
                for loop in loops:
                    tx.execute(
                        f"DELETE FROM {TABLE} WHERE loop = %s AND process = %s",
                        (loop, self.process),
                    )
        except Exception as exc:
            log.warning("loop status rows of %s not removed: %s", self.process, exc)


def _stamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stale_after(interval: float | None) -> float:
    """Seconds without an update after which a loop is shown stale."""
    if interval is None:
        return STALE_DEFAULT
    return max(STALE_INTERVALS * interval, STALE_FLOOR)


def read(views: ViewDB, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every loop of every process, oldest process first; ``stale`` computed at ``now``."""
    now = now or datetime.now(UTC)
    rows = views.query(
        "SELECT loop, process, started_at, last_success, last_error, last_error_at, runs, "
        f"errors, interval_seconds, updated_at FROM {TABLE} ORDER BY loop, process"
    )
    out = []
    for loop, process, started, success, error, error_at, runs, errors, interval, updated in rows:
        updated_at = _stamp(updated)
        assert updated_at is not None
        interval = float(interval) if interval is not None else None
        out.append(
            {
                "loop": loop,
                "process": process,
                "started_at": _stamp(started),
                "last_success": _stamp(success),
                "last_error": error,
                "last_error_at": _stamp(error_at),
                "runs": int(runs),
                "errors": int(errors),
                "interval_seconds": interval,
                "updated_at": updated_at,
                "stale": (now - updated_at).total_seconds() > stale_after(interval),
            }
        )
    return out
