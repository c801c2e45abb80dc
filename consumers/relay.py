"""`yingke relay`: publish the notification log to Kafka, at least once, in order.

One batch at a time: read the notifications after the relay's position, turn each into
its public message (consumers.contract), send the batch keyed by aggregate id, wait for
the broker to acknowledge all of it (acks=all, idempotent producer), and only then
record the new position. A crash anywhere before that write re-sends the batch on
restart; nothing is ever skipped. Consumers absorb the duplicates by event identity.

Only the holder of a lock publishes: a PostgreSQL session advisory lock (a file lock on
SQLite). The position is written through the very session that holds the lock, so a
relay that lost its session (and with it the lock) cannot move the position either.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
from eventsourcing.application import Application

from consumers import contract
from consumers.broker import (
    KafkaPublisher,
    Publisher,
    Record,
    Stopper,
    ensure_topics,
    heartbeat,
    retrying,
)
from consumers.store import lock_key

if TYPE_CHECKING:
    from yingke.settings import Settings

log = logging.getLogger("yingke.relay")

TABLE = "relay_position"
_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} "
    "(relay TEXT PRIMARY KEY, position BIGINT NOT NULL, published BIGINT NOT NULL)"
)
_SAVE = (
    f"INSERT INTO {TABLE} (relay, position, published) VALUES (%s, %s, %s) "
    f"ON CONFLICT (relay) DO UPDATE SET position = excluded.position, "
    f"published = {TABLE}.published + excluded.published"
)


class RelayState(Protocol):
    """The relay's lease and its position: who may publish, and from where."""

    def acquire(self) -> bool: ...

    def position(self) -> int: ...

    def save(self, position: int, published: int) -> None: ...

    def release(self) -> None: ...


class PostgresRelayState:
    def __init__(self, conninfo: str, name: str) -> None:
        self.conninfo = conninfo
        self.name = name
        self.key = lock_key(f"yingke.relay:{name}")
        self._conn: psycopg.Connection[Any] | None = None

    def acquire(self) -> bool:
        if self._conn is not None and not self._conn.closed:
            return True
        conn = psycopg.connect(self.conninfo, autocommit=True)
        held = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        if not held or not held[0]:
            conn.close()
            return False
        conn.execute(_DDL)  # only the lock holder runs DDL: no race
        self._conn = conn
        return True

    def _held(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise RuntimeError("the relay does not hold its lock")
        return self._conn

    def position(self) -> int:
        row = (
            self._held()
            .execute(f"SELECT position FROM {TABLE} WHERE relay = %s", (self.name,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def save(self, position: int, published: int) -> None:
        self._held().execute(_SAVE, (self.name, position, published))

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # ends the session: the lock goes with it
            self._conn = None


class SQLiteRelayState:
    """The embedded default: an exclusive file lock beside the SQLite file."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None

    def acquire(self) -> bool:
        if self._lock_fd is not None:
            return True
        fd = os.open(f"{self.path}.relay-{self.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        self._conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        self._conn.execute(_DDL)
        return True

    def position(self) -> int:
        assert self._conn is not None
        row = self._conn.execute(
            f"SELECT position FROM {TABLE} WHERE relay = ?", (self.name,)
        ).fetchone()
        return int(row[0]) if row else 0

    def save(self, position: int, published: int) -> None:
        assert self._conn is not None
        self._conn.execute(_SAVE.replace("%s", "?"), (self.name, position, published))

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None


@dataclass
class Relay:
    app: Application  # type: ignore[type-arg]
    state: RelayState
    publisher: Publisher
    topic: str
    batch_size: int = 500
    published: int = 0
    standby: bool = False

    def batch(self, start: int) -> tuple[list[Record], int]:
        """The records for the notifications after ``start``, and the last position read."""
        notifications = self.app.recorder.select_notifications(
            start=start, limit=self.batch_size, inclusive_of_start=False
        )
        records = []
        for notification in notifications:
            event = self.app.mapper.to_domain_event(notification)
            message = contract.to_message(event, notification.id)
            if message is not None:
                records.append(
                    Record(
                        key=message["aggregate_id"].encode(),
                        value=contract.encode(message),
                        headers=contract.headers(message),
                    )
                )
        return records, notifications[-1].id if notifications else start

    def run_once(self) -> int:
        """Publish one batch if this relay holds the lock; the number of notifications."""
        if not self.state.acquire():
            if not self.standby:
                log.info("relay %s: another relay holds the lock; standing by", self.topic)
            self.standby = True
            return 0
        self.standby = False
        start = self.state.position()
        records, last = self.batch(start)
        if last == start:
            return 0
        if records:
            self.publisher.publish(self.topic, records)
        self.state.save(last, len(records))  # after the broker acknowledged: never skips
        self.published += len(records)
        return last - start

    def catch_up(self) -> int:
        total = 0
        while count := self.run_once():
            total += count
        return total


def relay_state(settings: Any) -> RelayState:
    from yingke.bootstrap import conninfo

    if settings.embedded:
        return SQLiteRelayState(settings.views_path, settings.kafka_topic)
    return PostgresRelayState(conninfo(settings), settings.kafka_topic)


def main(stopper: Stopper | None = None, settings: Settings | None = None) -> int:
    """Run the relay until SIGTERM: publish, or stand by while another relay holds the lock."""
    from yingke import metrics
    from yingke.bootstrap import build
    from yingke.settings import load_settings

    settings = settings or load_settings()
    stopper = stopper or Stopper().install()
    ensure_topics(settings.kafka_bootstrap, [settings.kafka_topic])
    container = build(settings)
    state = relay_state(settings)
    publisher = KafkaPublisher(settings.kafka_bootstrap)
    relay = Relay(
        container.store, state, publisher, settings.kafka_topic, settings.relay_batch_size
    )
    observed = container.metrics

    def step() -> int:
        before = relay.published
        moved = relay.run_once()
        observed.relay_published.inc(relay.published - before)
        observed.succeeded("relay", interval=settings.relay_interval)
        return moved

    def failed(error: str) -> None:
        observed.failed("relay", error, interval=settings.relay_interval)
        state.release()

    print(f"yingke relay: notification log → {settings.kafka_topic}", flush=True)
    metrics.serve(observed, settings, "relay")
    try:
        while not stopper.stopped:
            moved = retrying("relay", step, failed)
            heartbeat(settings.heartbeat_file)
            if not moved:
                stopper.wait(settings.relay_interval if not relay.standby else 2.0)
    finally:
        state.release()
        publisher.close()
        container.close()
    return 0
