"""`yingke verify` on a large log, on PostgreSQL and on SQLite.

Run with ``python -m bench.verify_chain [--events N] [--backend postgres|sqlite|both]``.
PostgreSQL needs the server on 127.0.0.1:5432 (trust auth); a database of its own is
created and dropped. SQLite writes into a temporary directory.

Events are synthetic (200 streams per 1,000 events, ~300-byte states) but go through
the chained recorder's real insert path (``recorder.insert_events``, batches of 2,000),
so writing them also measures what the chain costs an append. Then, in this process:

1. baseline: reading the whole notification log (``select_notifications``, pages of
   5,000), which bounds any check that must read every event;
2. ``verify_log``: every stream chain, the log chain and every signed checkpoint, as
   ``yingke verify`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing.persistence import StoredEvent

from bench.common import scratch_database
from yingke.bootstrap import Container, build, migrate
from yingke.chain import verify_log
from yingke.settings import Settings, load_settings

SECRET = "bench-secret-0123456789abcdef"
ADMIN_KEY = "bench-admin-key-0123456789"
BATCH = 2_000
TOPIC = "domain.client:Client.FollowUpLogged"


def _events(total: int) -> Iterator[list[StoredEvent]]:
    rng = random.Random(7)
    streams: list[tuple[uuid.UUID, int]] = []
    batch: list[StoredEvent] = []
    for n in range(total):
        if not streams or rng.random() < 0.2:
            streams.append((uuid.uuid4(), 0))
        index = rng.randrange(max(0, len(streams) - 500), len(streams))
        stream, version = streams[index]
        streams[index] = (stream, version + 1)
        state = json.dumps(
            {
                "timestamp": "2026-03-03T02:00:00+00:00",
                "actor": {"id": f"cons-{n % 97}", "role": "consultant"},
                "correlation_id": f"req-{n}",
                "follow_up_id": str(uuid.UUID(int=n)),
                "method": "call",
                "effective": True,
                "pii": "v1:" + "A" * 120,
            }
        ).encode()
        batch.append(StoredEvent(stream, version + 1, TOPIC, state))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _run(name: str, settings: Settings, total: int) -> None:
    migrate(settings)
    container: Container = build(settings)
    recorder = container.store.recorder
    try:
        started = time.perf_counter()
        for batch in _events(total):
            recorder.insert_events(batch)
        wrote = time.perf_counter() - started

        started = time.perf_counter()
        after, read = 0, 0
        while True:
            page = recorder.select_notifications(after + 1, 5_000)
            if not page:
                break
            read += len(page)
            after = page[-1].id
        reading = time.perf_counter() - started

        started = time.perf_counter()
        report = verify_log(recorder, container.key_dir)
        verifying = time.perf_counter() - started
        assert report.events == total == read, (report.events, total, read)
        print(f"\n{name}: {total:,} events, {report.checkpoints} signed checkpoints")
        print(f"{'measure':<44} {'events/s':>10} {'seconds':>8} {'vs read':>8}")
        for label, seconds in (
            ("append through the chained recorder", wrote),
            ("read the notification log (baseline)", reading),
            ("verify: stream chains, log chain, checkpoints", verifying),
        ):
            print(
                f"{label:<44} {total / seconds:>10,.0f} {seconds:>8.1f} "
                f"{(total / seconds) / (total / reading):>8.2f}"
            )
    finally:
        container.close()


@contextmanager
def _postgres() -> Iterator[Settings]:
    with scratch_database() as dbname, tempfile.TemporaryDirectory() as data:
        yield load_settings(
            {
                "YINGKE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{dbname}",
                "YINGKE_DATA_DIR": data,
                "YINGKE_SECRET": SECRET,
                "YINGKE_ADMIN_KEY": ADMIN_KEY,
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    args = parser.parse_args()
    print(f"machine: nproc={os.cpu_count()}")
    if args.backend in ("postgres", "both"):
        with _postgres() as settings:
            _run("PostgreSQL", settings, args.events)
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as data:
            _run("SQLite", load_settings({"YINGKE_DATA_DIR": data}), args.events)


if __name__ == "__main__":
    main()
