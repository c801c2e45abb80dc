"""The live follower's throughput: events/s it projects into every view, and the
statements each batch sends, batched (rows prefetched, one upsert per table) or not.

Run with ``make bench-follower`` or ``python -m bench.follower [--events N] [--rounds R]
[--profile]``. Needs the PostgreSQL server on 127.0.0.1:5432 (trust auth, user
``postgres``); creates its own database and drops it at the end.

The log is the one ``bench.rebuild_views`` writes (a sales office's mix, written fast
through the aggregates), its buyers arriving over ``--days`` (1: the follower behind a
live server sees one day's buyers, and one day's counters, per batch). Each round
empties the views and lets a ``Follower`` of all views catch up on the whole log in
batches of 1,000, as the in-process follower does behind ``yingke serve``; rounds
alternate between the baseline (rows loaded one key at a time and written back one
statement per row, as before issue 15) and batched (``prefetch_all`` and one upsert
per table), so both see the same machine load. Statements are counted by a wrapping cursor, and CPU
seconds (this process's, and the PostgreSQL backends' it used, read from /proc: the
server must run on this machine): they depend far less on the load than seconds do.
``--profile`` prints the top of a cProfile of one more batched round.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import database_url, print_machine, print_table, scratch_database
from bench.rebuild_views import ADMIN_KEY, SECRET, reset, write_log
from projections.runtime import Follower, Tx, ViewDB
from yingke.bootstrap import Container, all_views, build, migrate
from yingke.settings import load_settings


class CountingTx:
    """A cursor that counts what it is asked to run, by the statement's first words."""

    def __init__(self, inner: Tx, counts: Counter[str]) -> None:
        self._inner = inner
        self._counts = counts

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._counts[kind_of(sql)] += 1
        return self._inner.execute(sql, params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        self._counts[kind_of(sql) + " (executemany)"] += 1
        return self._inner.executemany(sql, params)

    def fetchone(self) -> Any:
        return self._inner.fetchone()

    def fetchall(self) -> list[Any]:
        return self._inner.fetchall()


def kind_of(sql: str) -> str:
    if sql.startswith("SELECT") and (" = ANY(" in sql or " IN (" in sql):
        return "SELECT many keys"
    if sql.startswith("SELECT") and "projection_tracking" not in sql:
        return "SELECT one key"
    return " ".join(sql.split()[:2])


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process on this machine has used."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CountingDB(ViewDB):
    """Counts the statements, and the CPU the PostgreSQL backends serving them used (the
    server is on this machine): both hold however loaded the machine is."""

    def __init__(self, inner: ViewDB) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.counts: Counter[str] = Counter()
        self.backends: dict[int, float] = {}  # pid → its CPU when first seen

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.inner.transaction() as tx:
            pid = tx.connection.info.backend_pid  # type: ignore[attr-defined]
            if pid not in self.backends:
                self.backends[pid] = process_cpu(pid)
            yield CountingTx(tx, self.counts)

    def server_cpu(self) -> float:
        return sum(process_cpu(pid) - cpu for pid, cpu in self.backends.items())

    def close(self) -> None:
        pass


@dataclass
class Round:
    mode: str
    events: int
    batches: int
    seconds: float
    cpu: float
    server_cpu: float
    counts: Counter[str]

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def catch_up(container: Container, batched: bool) -> Round:
    views = all_views()
    reset(container.views, views)
    db = CountingDB(container.views)
    follower = Follower(container.store, db, views, batch_size=1000, batched=batched)
    started, cpu = time.perf_counter(), time.process_time()
    events = batches = 0
    while count := follower.run_once():
        events += count
        batches += 1
    return Round(
        "batched" if batched else "baseline (one key, one row at a time)",
        events,
        batches,
        time.perf_counter() - started,
        time.process_time() - cpu,
        db.server_cpu(),
        db.counts,
    )


def profile(container: Container) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    catch_up(container, batched=True)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    return out.getvalue()


def run(args: argparse.Namespace, dbname: str, data_dir: str) -> int:
    settings = load_settings(
        {
            "YINGKE_DATABASE_URL": database_url(dbname),
            "YINGKE_DATA_DIR": data_dir,
            "YINGKE_SECRET": SECRET,
            "YINGKE_ADMIN_KEY": ADMIN_KEY,
            "YINGKE_PG_POOL_SIZE": "2",
        }
    )
    migrate(settings)
    container = build(settings)
    try:
        print(f"writing {args.events:,} events …", flush=True)
        write_log(container, args.events, args.seed, args.days)
        rounds: list[Round] = []
        for n in range(args.rounds * 2):
            done = catch_up(container, batched=n % 2 == 1)
            rounds.append(done)
            print(
                f"  {done.mode}: {done.events:,} events in {done.seconds:.1f}s "
                f"(load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
        base = [r for r in rounds if not r.mode.startswith("batched")]
        new = [r for r in rounds if r.mode.startswith("batched")]
        base_rate = sum(r.rate for r in base) / len(base)
        print()
        print_table(
            ("round", "events", "batches", "seconds", "events/s", "vs baseline",
             "follower CPU s", "PG backend CPU s", "CPU µs/event", "statements/batch"),
            [
                (r.mode, f"{r.events:,}", str(r.batches), f"{r.seconds:.1f}", f"{r.rate:,.0f}",
                 f"{r.rate / base_rate:.2f}", f"{r.cpu:.1f}", f"{r.server_cpu:.1f}",
                 f"{(r.cpu + r.server_cpu) / r.events * 1e6:,.0f}",
                 f"{sum(r.counts.values()) / r.batches:,.0f}")
                for r in rounds
            ],
        )  # fmt: skip
        print("\nstatements per batch, by kind (first baseline round, first batched round):")
        kinds = sorted(set(base[0].counts) | set(new[0].counts))
        print_table(
            ("statement", "baseline", "batched"),
            [
                (k, f"{base[0].counts[k] / base[0].batches:,.1f}",
                 f"{new[0].counts[k] / new[0].batches:,.1f}")
                for k in kinds
            ],
        )  # fmt: skip
        if args.profile:
            print("\ncProfile of one more batched round (tottime):", flush=True)
            print(profile(container))
    finally:
        container.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.follower", description=__doc__)
    parser.add_argument("--events", type=int, default=30_000, help="events in the log")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each mode")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--days", type=float, default=1, help="days the buyers' first reports span (1)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile a batched round")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with scratch_database() as dbname:
        print_machine(dbname)
        with tempfile.TemporaryDirectory() as data_dir:
            return run(args, dbname, data_dir)


if __name__ == "__main__":
    sys.exit(main())
