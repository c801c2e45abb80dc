"""Where an application-layer report's time goes (issue 15), beside raw SQL in one run.

``python -m bench.filing_breakdown [--reports N] [--rounds R]`` files N reports on 8
threads through ``Reports.file_report`` (group commit on) and N rows with raw SQL
``INSERT … ON CONFLICT`` on 8 connections, alternating R times, on one scratch database
(dropped at the end). Per report it prints:

- CPU milliseconds of this Python process (``time.process_time`` over the run);
- SQL statements sent (every ``psycopg`` cursor execute counted) and PostgreSQL
  transactions committed (``pg_stat_database.xact_commit``; an autocommit statement is
  one), and group-commit batches;
- a breakdown by part: CPU (thread time, so a part waiting on PostgreSQL or on the lock
  costs nothing) and wall time, each part's own time only (nested parts subtracted).

The probes wrap functions in this process, so the absolute figures include their own
cost (a few microseconds per call); the ratios to raw SQL are taken from the throughput
of runs without probes. Run it under ``py-spy record`` for a sampled profile.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from bench.common import conninfo, print_machine, print_table, scratch_database
from bench.report_filing import (
    THREADS,
    PhoneSource,
    app_worker,
    bench_settings,
    drive,
    make_workload,
    raw_sql_table,
    raw_sql_worker,
)
from domain.values import PhoneKeyer
from yingke.bootstrap import build, migrate

# --------------------------------------------------------------------- probes


class Probes:
    """Exclusive CPU (thread time) and wall time per named part, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.enabled = False
        self._undo: list[Callable[[], None]] = []

    def reset(self) -> None:
        with self._lock:
            self.cpu.clear()
            self.wall.clear()
            self.calls.clear()

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        stack: list[list[float]] = self._local.__dict__.setdefault("stack", [])
        frame = [0.0, 0.0]  # children's cpu, wall
        stack.append(frame)
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        try:
            yield
        finally:
            cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
            stack.pop()
            if stack:
                stack[-1][0] += cpu
                stack[-1][1] += wall
            with self._lock:
                self.cpu[name] += cpu - frame[0]
                self.wall[name] += wall - frame[1]
                self.calls[name] += 1

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)
        probes = self

        def probed(*args: Any, **kwargs: Any) -> Any:
            with probes.part(name):
                return original(*args, **kwargs)

        setattr(owner, attr, probed)
        had_own = isinstance(owner, type) and attr in owner.__dict__
        if isinstance(owner, type) and not had_own:
            self._undo.append(lambda: delattr(owner, attr))
        else:
            self._undo.append(lambda: setattr(owner, attr, original))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


class StatementCount:
    """Every statement psycopg sends from this process (cursor execute/executemany)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        cursor = psycopg.Cursor
        self._execute, self._executemany = cursor.execute, cursor.executemany
        meter = self

        def execute(curs: Any, *args: Any, **kwargs: Any) -> Any:
            with meter._lock:
                meter.count += 1
            return meter._execute(curs, *args, **kwargs)

        def executemany(curs: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            params = list(params_seq)
            with meter._lock:
                meter.count += len(params)
            return meter._executemany(curs, query, params, **kwargs)

        cursor.execute = execute  # type: ignore[method-assign,assignment]
        cursor.executemany = executemany  # type: ignore[method-assign,assignment]

    def restore(self) -> None:
        psycopg.Cursor.execute = self._execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = self._executemany  # type: ignore[method-assign]


def commits(dbname: str) -> int:
    with psycopg.connect(conninfo(dbname)) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (dbname,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_stats_flush(dbname: str, before: int) -> int:
    """pg_stat_database is updated when backends report (at most ~1 s late)."""
    deadline = time.monotonic() + 5
    last = commits(dbname)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = commits(dbname)
        if now == last and now > before:
            return now
        last = now
    return last


def install_probes(probes: Probes, container: Any) -> None:
    from domain.services.clients import Clients
    from domain.services.policies import Policies
    from domain.services.reports import Reports
    from domain.services.uow import UnitOfWork
    from yingke.chain import Chained, ChainedPostgresRecorder
    from yingke.group_commit import GroupWriter
    from yingke.keys import KeyDir
    from yingke.vault import PostgresKeyStore, Vault

    store = container.store
    probes.wrap(Reports, "file_report", "other (service, uow, domain decide)")
    probes.wrap(UnitOfWork, "find", "reads: stream decode + fold")
    probes.wrap(
        ChainedPostgresRecorder, "select_events", "reads: select_events (SQL + chain check)"
    )
    probes.wrap(Policies, "policy_for", "reads: policy copy")
    probes.wrap(Clients, "client_for", "domain: client_for")
    probes.wrap(Vault, "seal", "vault: seal (AES, wrap)")
    probes.wrap(PostgresKeyStore, "put_if_absent", "vault: key insert (PG)")
    probes.wrap(PostgresKeyStore, "get", "vault: key read (PG)")
    probes.wrap(KeyDir, "read_kek", "vault: KEK file read")
    probes.wrap(KeyDir, "kek_unchanged", "vault: KEK file check (stat)")
    probes.wrap(KeyDir, "current_epoch", "vault: KEK dir listing")
    probes.wrap(KeyDir, "signing_key", "signing key file read")
    probes.wrap(type(store), "save", "save: other (collect, notify)")
    probes.wrap(store.mapper, "to_stored_event", "save: encode (JSON, mapper)")
    probes.wrap(GroupWriter, "submit_request", "save: writer wait")
    probes.wrap(Chained, "_append_chain", "writer thread: chain hash")
    writer = store.recorder.writer
    probes.wrap(writer, "_write", "writer thread: batch SQL + other")


# ---------------------------------------------------------------------- floor


def floor(container: Any, reps: int = 2000) -> dict[str, float]:
    """CPU microseconds, one thread, of the work every accepted report must do whatever
    the architecture: encode its four events, seal the buyer's phone and the report's
    name under a new subject key (and wrap that key), and chain-hash the four events."""
    import uuid

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from bench.report_filing import Filing, app_worker
    from yingke.chain import event_hash, log_hash

    recorded: list[Any] = []
    original = container.uow.run

    def keep(ctx: Any, decide: Any) -> Any:
        done = original(ctx, decide)
        recorded.extend(done.recorded)
        return done

    container.uow.run = keep
    try:
        with app_worker(container.reports)() as op:
            op(Filing("floor", 0, "13912345678", "张三丰"))
    finally:
        del container.uow.run
    mapper, vault = container.store.mapper, container.vault
    stored = [mapper.to_stored_event(e) for e in recorded]
    current = vault._current_kek()
    subject = uuid.uuid4()
    name = str(subject)

    def timed(work: Callable[[], object]) -> float:
        started = time.process_time()
        for _ in range(reps):
            work()
        return (time.process_time() - started) / reps * 1e6

    def encode() -> object:
        return [mapper.to_stored_event(e) for e in recorded]

    def seal() -> object:
        raw = AESGCM.generate_key(256)
        key = AESGCM(raw)
        vault._wrap(name, raw, (current.epoch, current.kek))
        vault._seal_with(key, subject, {"phone": "13912345678"})
        return vault._seal_with(key, subject, {"name": "张三丰"})

    def chain() -> object:
        head = b"\0" * 32
        for position, e in enumerate(stored, start=1):
            own = event_hash(subject, e.originator_version, position, e.topic, e.state, head)
            head = log_hash(head, position, own)
        return head

    return {
        f"encode {len(recorded)} events (mapper, JSON)": timed(encode),
        "new key + wrap + 2 seals (AES-GCM)": timed(seal),
        f"chain hash {len(stored)} events": timed(chain),
    }


# ----------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.filing_breakdown")
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    phones = PhoneSource(rng)
    results: list[tuple[str, float, float, float]] = []  # scenario, rate, cpu ms, load
    with scratch_database("yingke_breakdown") as dbname:
        print_machine(dbname)
        settings, _ = bench_settings(dbname)
        keyer = PhoneKeyer(settings.secret)
        migrate(settings)
        container = build(settings)
        probes = Probes()
        statements = StatementCount()
        try:
            parts = floor(container)
            print("\nfloor: the work every accepted report does, CPU µs on one thread")
            for name, micros in parts.items():
                print(f"  {name:<40} {micros:8.1f} µs")
            print(f"  {'total':<40} {sum(parts.values()):8.1f} µs", flush=True)
            for rnd in range(args.rounds):
                for kind in ("raw", "app", "probed"):
                    tag = f"{kind}-{rnd}"
                    workload = make_workload(f"bench-{tag}", args.reports, phones, rng)
                    warmup = make_workload(f"warm-{tag}", THREADS * 4, phones, rng, False)
                    if kind == "raw":
                        table = f"raw_{rnd}"
                        raw_sql_table(dbname, table)
                        factory = raw_sql_worker(dbname, table, keyer)
                    else:
                        factory = app_worker(container.reports)
                    if kind == "probed" and not probes._undo:
                        install_probes(probes, container)
                    probes.enabled = kind == "probed"
                    writer = container.store.recorder.writer  # type: ignore[attr-defined]
                    marks: dict[str, float] = {}

                    def start(marks: dict[str, float] = marks, w: Any = writer) -> None:
                        marks["commits"] = commits(dbname)
                        marks["statements"] = statements.count
                        marks["batches"] = w.batches
                        marks["cpu"] = time.process_time()
                        probes.reset()

                    load = os.getloadavg()[0]
                    run = drive(
                        tag,
                        THREADS,
                        workload,
                        warmup,
                        factory,
                        expect_reason="duplicate" if kind == "raw" else "protected",
                        on_start=start,
                    )
                    cpu = time.process_time() - marks["cpu"]
                    n = run.reports
                    sent = statements.count - marks["statements"]
                    xacts = wait_stats_flush(dbname, int(marks["commits"])) - marks["commits"]
                    problems = run.problems()
                    print(
                        f"\n{tag}: {run.rate:,.0f} reports/s, CPU {cpu / n * 1000:.2f} ms/report "
                        f"(process), {sent / n:.2f} statements/report, "
                        f"{xacts / n:.2f} PG commits/report, "
                        f"{(writer.batches - marks['batches']) / n:.3f} batches/report, "
                        f"load {load:.1f}" + (f"  PROBLEMS {problems}" if problems else ""),
                        flush=True,
                    )
                    results.append((tag, run.rate, cpu / n * 1000, load))
                    if kind == "probed":
                        rows = sorted(probes.cpu, key=lambda k: -probes.cpu[k])
                        total = sum(probes.cpu.values())
                        print_table(
                            (
                                "part",
                                "calls/report",
                                "CPU ms/report",
                                "CPU share",
                                "wall ms/report",
                            ),
                            [
                                (
                                    k,
                                    f"{probes.calls[k] / n:.2f}",
                                    f"{probes.cpu[k] / n * 1000:.3f}",
                                    f"{probes.cpu[k] / total:.0%}",
                                    f"{probes.wall[k] / n * 1000:.2f}",
                                )
                                for k in rows
                            ],
                        )
                        print(f"probed CPU total {total / n * 1000:.2f} ms/report")
        finally:
            probes.restore()
            statements.restore()
            container.close()
    print()
    raws = [r for r in results if r[0].startswith("raw")]
    apps = [r for r in results if r[0].startswith("app")]
    print_table(
        (
            "round",
            "raw SQL 8 conn/s",
            "raw CPU ms/row",
            "app 8 thr/s",
            "app CPU ms/report",
            "ratio",
            "load",
        ),
        [
            (
                str(i),
                f"{raw[1]:,.0f}",
                f"{raw[2]:.3f}",
                f"{app[1]:,.0f}",
                f"{app[2]:.2f}",
                f"{app[1] / raw[1]:.3f}",
                f"{raw[3]:.1f}/{app[3]:.1f}",
            )
            for i, (raw, app) in enumerate(zip(raws, apps, strict=True))
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
