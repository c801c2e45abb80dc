"""What a snapshot's encoding costs (ADR 0068): pickle (ADR 0060, the baseline) against
the JSON codec, on the long stream ``bench.reads`` writes, in one run.

Run with ``python -m bench.snapshot_codec [--reuse DBNAME] [--repeat N]``. Without
``--reuse`` it writes the ~1,000-event stream alone into a scratch database (PostgreSQL on
127.0.0.1:5432, dropped at the end); with it, it reads a database ``bench.reads --keep``
left. For the state at the stream's last snapshot version it prints the median µs of
encoding and decoding and the bytes stored, and the cost of the two new steps: the
round-trip check when a snapshot is taken, and a process's first use of a row (the fold
of the events under it compared with it) beside the chain re-check that first use
already paid (ADR 0060).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from bench.common import conninfo, print_machine, print_table, scratch_database
from bench.reads import make_office, settings_env, write_long_stream
from bench.rebuild_views import LogWriter
from yingke.bootstrap import build, migrate
from yingke.settings import load_settings
from yingke.snapshots import INTERVAL, Snapshots, _same, snapshot_key


def median_us(
    call: Callable[[], Any], repeat: int, clock: Callable[[], int] = time.thread_time_ns
) -> float:
    """Median µs of ``call``; by default of this thread's CPU time, which other load on
    a shared box does not inflate (a figure of wall time waits for the CPU as well)."""
    call()  # warm
    samples = []
    for _ in range(repeat):
        started = clock()
        call()
        samples.append(clock() - started)
    return statistics.median(samples) / 1000


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def long_stream(dbname: str) -> uuid.UUID:
    with psycopg.connect(conninfo(dbname)) as conn:
        row = conn.execute("SELECT client_id FROM bench_reads").fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def measure(dbname: str, data_dir: str, stream: uuid.UUID | None, repeat: int) -> None:
    settings = load_settings(settings_env(dbname, data_dir))
    if stream is None:
        migrate(settings)
    container = build(settings)
    try:
        if stream is None:
            writer = LogWriter(container)
            office, _ = make_office(writer)
            stream = write_long_stream(office, writer, 1_000, 2026).client_id
        store: Any = container.store
        key = snapshot_key(container.keyer.digest("yingke-snapshots"))
        snapshots = Snapshots(container.uow, key)
        snapshots.fold(stream, None)  # takes this code's snapshots if they are not there
        row = snapshots._read(stream, None, None).snapshot
        assert row is not None
        stored = list(store.recorder.select_events(stream))
        version = (len(stored) // INTERVAL) * INTERVAL
        under = stored[:version]
        state: Any = None
        for item in under:
            state = store.mapper.to_domain_event(item).mutate(state)
        pickled = pickle.dumps(state)
        encoded = snapshots.codec.encode(state)
        assert _same(snapshots.codec.decode(encoded), state)
        figures = {
            "pickle.dumps": median_us(lambda: pickle.dumps(state), repeat),
            "pickle.loads": median_us(lambda: pickle.loads(pickled), repeat),
            "JSON encode": median_us(lambda: snapshots.codec.encode(state), repeat),
            "JSON decode": median_us(lambda: snapshots.codec.decode(encoded), repeat),
        }
        took = median_us(lambda: snapshots._encoded(stream, state), repeat)

        def recheck() -> None:
            store.recorder.select_events(stream, lte=version)

        def first_use() -> None:
            fresh = Snapshots(container.uow, key)  # a process that has not seen the row
            fresh._recheck_prefix(stream, row, fresh._open(stream, row))
            assert fresh.compared == 1

        rounds = max(5, repeat // 100)
        rechecked = median_us(recheck, rounds)
        first = median_us(first_use, rounds)
        rechecked_wall = median_us(recheck, rounds, time.perf_counter_ns)
        first_wall = median_us(first_use, rounds, time.perf_counter_ns)
    finally:
        container.close()
    print(f"\nstate at version {version} of a {len(stored):,}-event stream; load {load()}")
    print_table(
        ("encoding (median CPU time)", "µs", "vs pickle", "bytes", "vs pickle"),
        [
            ("pickle: dumps (ADR 0060, baseline)", f"{figures['pickle.dumps']:.1f}", "1",
             f"{len(pickled):,}", "1"),
            ("pickle: loads (baseline)", f"{figures['pickle.loads']:.1f}", "1", "", ""),
            ("JSON: encode", f"{figures['JSON encode']:.1f}",
             f"×{figures['JSON encode'] / figures['pickle.dumps']:.1f}", f"{len(encoded):,}",
             f"×{len(encoded) / len(pickled):.2f}"),
            ("JSON: decode", f"{figures['JSON decode']:.1f}",
             f"×{figures['JSON decode'] / figures['pickle.loads']:.1f}", "", ""),
            ("JSON: encode + decode + compare (taking one)", f"{took:.1f}",
             f"×{took / figures['pickle.dumps']:.1f}", "", ""),
        ],
    )  # fmt: skip
    print()
    print_table(
        ("a process's first use of the row", "CPU ms", "vs re-check", "wall ms", "vs re-check"),
        [
            (f"chain re-check of the {version:,} events under it (ADR 0060, baseline)",
             f"{rechecked / 1000:.2f}", "1", f"{rechecked_wall / 1000:.2f}", "1"),
            ("open + re-check + fold + compare (ADR 0068)", f"{first / 1000:.2f}",
             f"×{first / rechecked:.1f}", f"{first_wall / 1000:.2f}",
             f"×{first_wall / rechecked_wall:.1f}"),
        ],
    )  # fmt: skip
    print(f"load after: {load()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.snapshot_codec")
    parser.add_argument("--reuse", metavar="DBNAME", help="a database bench.reads --keep left")
    parser.add_argument("--repeat", type=int, default=2_000, metavar="N")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as data_dir:
        if args.reuse:
            print_machine(args.reuse)
            measure(args.reuse, data_dir, long_stream(args.reuse), args.repeat)
        else:
            with scratch_database() as dbname:
                print_machine(dbname)
                measure(dbname, data_dir, None, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
