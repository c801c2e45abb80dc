"""The what-if replay (ADR 0059) over a quarter of a busy project on PostgreSQL.

Run with ``python -m bench.what_if [--events N]`` (``make bench-what-if``). Needs the
PostgreSQL server on 127.0.0.1:5432 (trust auth); creates its own scratch database and
drops it at the end, even on error.

The log is ``bench.rebuild_views``'s generator (the aggregates driven through the
application's own decisions), all of it one project over 90 days: at least 200,000
events by default. Then, in this one process:

1. the baseline: reading those events from the store (``select_notifications`` and
   ``mapper.to_domain_event``), which any replay has to do;
2. ``WhatIf.run`` of the quarter with no overrides (which must find no change), and with
   ``protection: P15D``: total seconds, events/s, and the ratio to the baseline.

The issue asks for ≤ 60 s for the quarter.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from bench.common import database_url, idle_check, print_machine, print_table, scratch_database
from bench.rebuild_views import (
    ADMIN_KEY,
    EPOCH,
    SECRET,
    Buyer,
    LogWriter,
    live,
    make_office,
    read_log,
    table_sizes,
)
from yingke.bootstrap import Container, build, migrate
from yingke.settings import load_settings

PROJECT = "proj-1"
TARGET_SECONDS = 60.0
QUARTER = timedelta(days=90)


def write_project(container: Container, events: int, seed: int) -> LogWriter:
    """The generator's buyers, all in one busy project."""
    rng = random.Random(seed)
    writer = LogWriter(container)
    office = make_office(writer)
    office.projects = [PROJECT]
    span = QUARTER.total_seconds()
    started = last = time.perf_counter()
    while writer.written + len(writer.pending) < events:
        live(Buyer(office, rng, writer, EPOCH + timedelta(seconds=rng.uniform(0, span))))
        if time.perf_counter() - last > 15:
            last = time.perf_counter()
            print(f"  … {writer.written:,} events written", flush=True)
    writer.flush()
    writer.total_seconds = time.perf_counter() - started
    return writer


def replay(container: Container, overrides: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    result = container.whatif.run(PROJECT, EPOCH, EPOCH + QUARTER, overrides)
    return result, time.perf_counter() - started


def measure(container: Container, args: argparse.Namespace, dbname: str) -> int:
    print(f"\nwriting {args.events:,} events of {PROJECT} (seed {args.seed}) …", flush=True)
    writer = write_project(container, args.events, args.seed)
    print(
        f"wrote {writer.written:,} events in {writer.total_seconds:.1f}s; {table_sizes(dbname)}",
        flush=True,
    )
    baseline = read_log(container, decode=True)
    print(f"baseline: {baseline.name} {baseline.events:,} in {baseline.seconds:.1f}s", flush=True)
    rows, worst = [], 0.0
    for label, overrides in (("no overrides", {}), ("protection P15D", {"protection": "P15D"})):
        result, seconds = replay(container, overrides)
        worst = max(worst, seconds)
        events = result["events_read"]
        rows.append(
            (
                label,
                f"{result['buyers']:,}",
                f"{result['events_replayed']:,}",
                f"{seconds:.1f}",
                f"{events / seconds:,.0f}",
                f"{seconds / baseline.seconds:.1f}×",
                f"{result['buyers_changed']:,}",
                f"{len(result['released_earlier']):,}",
            )
        )
        if not overrides and result["changes"]:
            print(f"NO-OVERRIDE REPLAY FOUND CHANGES: {result['changes'][:3]}", flush=True)
            return 1
    rows.insert(
        0,
        (
            "baseline: read + decode",
            "",
            f"{baseline.events:,}",
            f"{baseline.seconds:.1f}",
            f"{baseline.rate:,.0f}",
            "1.0×",
            "",
            "",
        ),
    )
    print_table(
        ("run", "buyers", "events", "seconds", "events/s", "vs baseline", "changed",
         "released earlier"),
        rows,
    )  # fmt: skip
    holds = worst <= TARGET_SECONDS
    print(
        f"\nrequirement (a quarter of a busy project, ≥ 200,000 events, in ≤ "
        f"{TARGET_SECONDS:.0f} s on PostgreSQL): {'HOLDS' if holds else 'DOES NOT HOLD'} — "
        f"slowest run {worst:.1f}s",
        flush=True,
    )
    return 0 if holds else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.what_if", description=__doc__)
    parser.add_argument("--events", type=int, default=210_000, metavar="N")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.perf_counter()
    with scratch_database() as dbname:
        print_machine(dbname)
        idle_check()
        with tempfile.TemporaryDirectory() as data_dir:
            settings = load_settings(
                {
                    "YINGKE_DATABASE_URL": database_url(dbname),
                    "YINGKE_DATA_DIR": data_dir,
                    "YINGKE_SECRET": SECRET,
                    "YINGKE_ADMIN_KEY": ADMIN_KEY,
                }
            )
            migrate(settings)
            container = build(settings)
            try:
                status = measure(container, args, dbname)
            finally:
                container.close()
    print(f"\nbench finished in {time.perf_counter() - started:.0f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
