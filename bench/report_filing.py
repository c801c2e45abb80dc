"""Report filing (报备) throughput on PostgreSQL: raw SQL, the application layer, HTTP.

Run with ``make bench-report-filing`` or ``python -m bench.report_filing [--reports N]``.
Needs the PostgreSQL server on 127.0.0.1:5432 (trust auth, user ``postgres``); creates
its own database ``yingke_bench_<hex>`` and drops it at the end, even on error.

Every scenario files the same shape of workload on its own fresh phone numbers and
project: N reports, of which about 10% are a second channel reporting a buyer another
channel has already reported (written in another phone format, so the number has to be
normalized to collide). Under the default policy (``report_first``) exactly one report
per buyer is accepted and every other one is rejected ``protected``, whatever the
interleaving, so the expected counts are known and checked; the exit status is non-zero
if they do not match.

Scenarios, all in this one process (the HTTP server is a subprocess):

1. raw SQL: one ``INSERT … ON CONFLICT DO NOTHING`` per report, autocommit, on a table
   with a UNIQUE phone-hash column; 1 connection and 8 connections (threads).
2. application layer: ``Reports.file_report`` (the service) called directly; 1 and 8 threads.
3. HTTP: ``POST /v1/reports`` against ``yingke serve`` (uvicorn), 32 concurrent clients,
   each a thread with its own keep-alive connection, authenticated as channel agents.

Latency is per report, measured by the caller. Ratios are reports/s over the raw-SQL
rate on 1 and on 8 connections.
"""

from __future__ import annotations

import argparse
import itertools
import random
import secrets
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from eventsourcing.persistence import IntegrityError
from psycopg import sql

from bench import common
from bench.common import (
    CpuSample,
    conninfo,
    database_url,
    idle_check,
    percentile,
    print_machine,
    scratch_database,
    yingke_serve,
)
from domain.application import EventStore
from domain.services.reports import Reports
from domain.services.uow import Context
from domain.values import Actor, PhoneKeyer, normalize_phone
from yingke.bootstrap import build, migrate
from yingke.settings import Settings, load_settings

PARTNERS = 4
COLLISION_RATE = 0.10
HTTP_CLIENTS = 32
THREADS = 8
NAMES = ("张三丰", "李四", "王小明", "赵丽颖", "陈建国", "刘芳", "周杰", "吴桂芬")

# (status, reason) of one filed report.
Outcome = tuple[str, str | None]
Op = Callable[["Filing"], Outcome]
WorkerFactory = Callable[[], AbstractContextManager[Op]]


# ------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Filing:
    project_id: str
    partner: int
    phone: str  # as sent: collisions use "+86 138-1234-5678", first reports the bare digits
    name: str

    @property
    def partner_id(self) -> str:
        return f"partner-{self.partner}"

    @property
    def agent_id(self) -> str:
        return f"agent-{self.partner}"


@dataclass(frozen=True)
class Workload:
    project_id: str
    filings: list[Filing]
    accepted: int  # expected
    rejected: int  # expected


class PhoneSource:
    """Distinct mainland mobile numbers, never repeated across scenarios of one run."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[int] = set()

    def take(self, count: int) -> list[str]:
        out: list[str] = []
        while len(out) < count:
            value = self._rng.randrange(13_000_000_000, 20_000_000_000)
            if value not in self._used:
                self._used.add(value)
                out.append(str(value))
        return out


def dashed(number: str) -> str:
    return f"+86 {number[:3]}-{number[3:7]}-{number[7:]}"


def make_workload(
    project_id: str, size: int, phones: PhoneSource, rng: random.Random, collisions: bool = True
) -> Workload:
    """``size`` reports; ~10% re-report an earlier buyer through another channel."""
    repeats = round(size * COLLISION_RATE) if collisions else 0
    firsts = size - repeats
    numbers = phones.take(firsts)
    keyed: list[tuple[float, Filing]] = []
    partners: list[int] = []
    for i, number in enumerate(numbers):
        partner = i % PARTNERS
        partners.append(partner)
        keyed.append((float(i), Filing(project_id, partner, number, rng.choice(NAMES))))
    for original in rng.sample(range(firsts), repeats):
        other = (partners[original] + rng.randrange(1, PARTNERS)) % PARTNERS
        later = original + rng.uniform(0.5, max(1.0, firsts * 0.2))
        keyed.append(
            (later, Filing(project_id, other, dashed(numbers[original]), rng.choice(NAMES)))
        )
    keyed.sort(key=lambda pair: pair[0])
    return Workload(project_id, [f for _, f in keyed], accepted=firsts, rejected=repeats)


# --------------------------------------------------------------------- driver


@dataclass
class Run:
    scenario: str
    workers: int
    reports: int
    seconds: float
    latencies: list[float]
    outcomes: Counter[str]
    reasons: Counter[str]
    expected: tuple[int, int]
    expect_reason: str | None
    notes: dict[str, str] = field(default_factory=dict)
    failed_checks: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.reports / self.seconds

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    def problems(self) -> list[str]:
        found = [f"{self.scenario}: {check}" for check in self.failed_checks]
        accepted, rejected = self.outcomes["accepted"], self.outcomes["rejected"]
        if (accepted, rejected) != self.expected:
            found.append(
                f"{self.scenario}: accepted/rejected {accepted}/{rejected}, "
                f"expected {self.expected[0]}/{self.expected[1]}"
            )
        others = set(self.outcomes) - {"accepted", "rejected"}
        if others:
            found.append(f"{self.scenario}: unexpected statuses {sorted(others)}")
        if self.expect_reason is not None and set(self.reasons) - {self.expect_reason}:
            found.append(
                f"{self.scenario}: rejection reasons {dict(self.reasons)}, "
                f"expected only {self.expect_reason!r}"
            )
        return found


def drive(
    scenario: str,
    workers: int,
    workload: Workload,
    warmup: Workload,
    open_worker: WorkerFactory,
    expect_reason: str | None,
    on_start: Callable[[], None] | None = None,
    server_pid: int | None = None,
) -> Run:
    """Run ``workload`` on ``workers`` threads, each pulling the next report as it frees up.

    Each worker opens its resources and files its share of ``warmup`` (not measured)
    before the clock starts, so connection set-up is not in the figures. ``on_start``
    runs once every worker is ready and before any measured report is filed.
    CPU use is sampled over the same span: the whole box, this process (the callers,
    and in the app-layer scenarios the application itself), and the server process.
    """
    items = workload.filings
    next_index = itertools.count()  # next() is atomic under the GIL
    start_cpu: list[CpuSample] = []
    clock_start: list[float] = []

    def go() -> None:
        # Runs in one thread before any is released: the clock starts here.
        if on_start is not None:
            on_start()
        start_cpu.append(CpuSample.take(server_pid))
        clock_start.append(time.perf_counter())

    ready = threading.Barrier(workers + 1, action=go)
    latencies: list[list[float]] = [[] for _ in range(workers)]
    outcomes: list[list[Outcome]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []
    finished: list[float] = []

    def work(w: int) -> None:
        try:
            with open_worker() as op:
                for filing in warmup.filings[w::workers]:
                    op(filing)
                ready.wait()
                mine, got = latencies[w], outcomes[w]
                while (i := next(next_index)) < len(items):
                    started = time.perf_counter()
                    outcome = op(items[i])
                    mine.append(time.perf_counter() - started)
                    got.append(outcome)
                finished.append(time.perf_counter())
        except BaseException as exc:
            errors.append(exc)
            ready.abort()
            # Make the others stop early too.
            for _ in range(len(items)):
                next(next_index)

    threads = [
        threading.Thread(target=work, args=(w,), name=f"{scenario}-{w}", daemon=True)
        for w in range(workers)
    ]
    for thread in threads:
        thread.start()
    with suppress(threading.BrokenBarrierError):
        ready.wait()  # a worker that failed to start breaks it; reported below
    for thread in threads:
        # Timed joins: a signal caught by a worker thread still reaches the main thread
        # (SIGTERM must stop the server and drop the database without waiting for the end).
        while thread.is_alive():
            thread.join(0.2)
    if errors:
        raise RuntimeError(f"{scenario} failed: {errors[0]!r}") from errors[0]
    seconds = max(finished) - clock_start[0]
    cpu = start_cpu[0].until(CpuSample.take(server_pid))
    flat = [o for per in outcomes for o in per]
    return Run(
        scenario=scenario,
        workers=workers,
        reports=len(flat),
        seconds=seconds,
        latencies=[x for per in latencies for x in per],
        outcomes=Counter(status for status, _ in flat),
        reasons=Counter(reason or "-" for status, reason in flat if status == "rejected"),
        expected=(workload.accepted, workload.rejected),
        expect_reason=expect_reason,
        notes=cpu,
    )


# ------------------------------------------------------------------ databases


def count_rows(dbname: str, table: str) -> int:
    with psycopg.connect(conninfo(dbname)) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
    assert row is not None
    return int(row[0])


def events_table(dbname: str) -> str:
    with psycopg.connect(conninfo(dbname)) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_name LIKE %s ORDER BY table_name",
            ("%events",),
        ).fetchall()
    if len(rows) != 1:
        raise RuntimeError(f"expected one events table, found {[r[0] for r in rows]}")
    return str(rows[0][0])


# ------------------------------------------------------------------- raw SQL


def raw_sql_table(dbname: str, table: str) -> None:
    with psycopg.connect(conninfo(dbname), autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id BIGSERIAL PRIMARY KEY, project_id TEXT NOT NULL, "
                "phone_hash TEXT NOT NULL UNIQUE, partner_id TEXT NOT NULL, "
                "filed_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            ).format(sql.Identifier(table))
        )


def raw_sql_worker(dbname: str, table: str, keyer: PhoneKeyer) -> WorkerFactory:
    statement = sql.SQL(
        "INSERT INTO {} (project_id, phone_hash, partner_id) VALUES (%s, %s, %s) "
        "ON CONFLICT (phone_hash) DO NOTHING"
    ).format(sql.Identifier(table))

    @contextmanager
    def open_worker() -> Iterator[Op]:
        with psycopg.connect(conninfo(dbname), autocommit=True) as conn:

            def op(filing: Filing) -> Outcome:
                digest = keyer.digest(normalize_phone(filing.phone))
                cur = conn.execute(statement, (filing.project_id, digest, filing.partner_id))
                return ("accepted", None) if cur.rowcount == 1 else ("rejected", "duplicate")

            yield op

    return open_worker


# -------------------------------------------------------- application layer


class SaveMeter:
    """Times ``app.save`` (the event-store transaction) and counts conflicting saves."""

    def __init__(self, app: EventStore) -> None:
        self._lock = threading.Lock()
        self._original = app.save
        self.calls = 0
        self.conflicts = 0
        self.seconds = 0.0

        def timed(*objs: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            conflict = False
            try:
                return self._original(*objs, **kwargs)
            except IntegrityError:
                conflict = True
                raise
            finally:
                spent = time.perf_counter() - started
                with self._lock:
                    self.calls += 1
                    self.conflicts += conflict
                    self.seconds += spent

        app.save = timed  # type: ignore[method-assign]
        self._app = app

    def reset(self) -> None:
        with self._lock:
            self.calls = self.conflicts = 0
            self.seconds = 0.0

    def restore(self) -> None:
        self._app.save = self._original  # type: ignore[method-assign]


def app_worker(reports: Reports) -> WorkerFactory:
    @contextmanager
    def open_worker() -> Iterator[Op]:
        def op(filing: Filing) -> Outcome:
            done = reports.file_report(
                Context(Actor(filing.agent_id, "channel_agent"), f"bench-{uuid.uuid4().hex}"),
                project_id=filing.project_id,
                partner_id=filing.partner_id,
                agent_id=filing.agent_id,
                client_name=filing.name,
                phone=filing.phone,
            )
            view = done.value
            return str(view.report.status_at(view.at)), view.report.reason

        yield op

    return open_worker


class EventMark:
    """Stored events written (and save() time spent) from ``start`` on."""

    def __init__(self, dbname: str, table: str, meter: SaveMeter | None = None) -> None:
        self._dbname, self._table, self._meter = dbname, table, meter
        self._before = 0

    def start(self) -> None:
        self._before = count_rows(self._dbname, self._table)
        if self._meter is not None:
            self._meter.reset()

    def events(self) -> int:
        return count_rows(self._dbname, self._table) - self._before


# ----------------------------------------------------------------------- HTTP


def register_agents(base: str, admin_key: str) -> dict[int, str]:
    keys: dict[int, str] = {}
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        for partner in range(PARTNERS):
            response = client.post(
                "/v1/principals",
                json={
                    "id": f"agent-{partner}",
                    "role": "channel_agent",
                    "partner_id": f"partner-{partner}",
                },
                headers={"Authorization": f"Bearer {admin_key}"},
            )
            if response.status_code != 201:
                raise RuntimeError(
                    f"POST /v1/principals: {response.status_code} {response.text[:500]}"
                )
            keys[partner] = str(response.json()["key"])
    return keys


def http_worker(base: str, keys: dict[int, str]) -> WorkerFactory:
    @contextmanager
    def open_worker() -> Iterator[Op]:
        with httpx.Client(base_url=base, trust_env=False, timeout=120) as client:

            def op(filing: Filing) -> Outcome:
                response = client.post(
                    "/v1/reports",
                    json={
                        "project_id": filing.project_id,
                        "partner_id": filing.partner_id,
                        "agent_id": filing.agent_id,
                        "client_name": filing.name,
                        "phone": filing.phone,
                    },
                    headers={"Authorization": f"Bearer {keys[filing.partner]}"},
                )
                if response.status_code != 201:
                    raise RuntimeError(
                        f"POST /v1/reports: {response.status_code} {response.text[:500]}"
                    )
                body = response.json()
                return str(body["status"]), body.get("reason")

            yield op

    return open_worker


# --------------------------------------------------------------------- report


def print_runs(runs: Sequence[Run], base1: float, base8: float) -> None:
    headers = (
        "scenario",
        "workers",
        "reports",
        "accepted",
        "rejected",
        "seconds",
        "reports/s",
        "p50 ms",
        "p99 ms",
        "vs raw×1",
        "vs raw×8",
    )
    rows = [
        (
            r.scenario,
            str(r.workers),
            str(r.reports),
            str(r.outcomes["accepted"]),
            str(r.outcomes["rejected"]),
            f"{r.seconds:.2f}",
            f"{r.rate:,.0f}",
            f"{r.percentile_ms(0.50):.2f}",
            f"{r.percentile_ms(0.99):.2f}",
            f"{r.rate / base1:.3f}",
            f"{r.rate / base8:.3f}",
        )
        for r in runs
    ]
    common.print_table(headers, rows)


# ----------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report_filing",
        description="Report filing throughput on PostgreSQL: raw SQL vs app layer vs HTTP.",
    )
    parser.add_argument(
        "--reports",
        type=int,
        default=2000,
        metavar="N",
        help="reports per scenario, ~10%% of them collisions (default 2000)",
    )
    parser.add_argument("--seed", type=int, default=2026, help="workload seed")
    args = parser.parse_args(argv)
    if args.reports < 20:
        parser.error("--reports must be at least 20")
    return args


def bench_settings(dbname: str) -> tuple[Settings, dict[str, str]]:
    env = {
        "YINGKE_DATABASE_URL": database_url(dbname),
        "YINGKE_SECRET": secrets.token_hex(32),
        "YINGKE_ADMIN_KEY": "yk-admin-bench-" + secrets.token_urlsafe(24),
    }
    return load_settings(env), env


def run_all(dbname: str, size: int, seed: int) -> list[Run]:
    rng = random.Random(seed)
    phones = PhoneSource(rng)
    warm = max(THREADS * 4, HTTP_CLIENTS * 2)

    def workloads(tag: str) -> tuple[Workload, Workload]:
        return (
            make_workload(f"bench-{tag}", size, phones, rng),
            make_workload(f"warmup-{tag}", warm, phones, rng, collisions=False),
        )

    settings, settings_env = bench_settings(dbname)
    keyer = PhoneKeyer(settings.secret)
    runs: list[Run] = []

    def report(run: Run) -> None:
        runs.append(run)
        notes = ", ".join(f"{k} {v}" for k, v in run.notes.items())
        print(
            f"  {run.scenario:<18} {run.rate:7,.0f} reports/s  p50 {run.percentile_ms(0.5):7.2f} ms"
            f"  p99 {run.percentile_ms(0.99):7.2f} ms  {run.seconds:6.2f} s\n      {notes}",
            flush=True,
        )

    print("\nrunning (each scenario on its own fresh buyers and project):", flush=True)
    for workers in (1, THREADS):
        table = f"raw_reports_{workers}"
        raw_sql_table(dbname, table)
        workload, warmup = workloads(f"raw-{workers}")
        run = drive(
            f"raw SQL, {workers} conn",
            workers,
            workload,
            warmup,
            raw_sql_worker(dbname, table, keyer),
            expect_reason="duplicate",
        )
        stored = count_rows(dbname, table) - len(warmup.filings)
        if stored != workload.accepted:
            run.failed_checks.append(f"{stored} rows stored, expected {workload.accepted}")
        report(run)

    migrate(settings)
    table = events_table(dbname)
    container = build(settings)
    meter = SaveMeter(container.store)
    try:
        recorder = container.store.recorder
        for workers, grouped in ((1, True), (THREADS, False), (THREADS, True)):
            recorder.group_commit = grouped  # type: ignore[attr-defined]
            workload, warmup = workloads(f"app-{workers}-{grouped}")
            mark = EventMark(dbname, table, meter)
            writer = recorder.writer  # type: ignore[attr-defined]
            batches, requests = writer.batches, writer.requests
            run = drive(
                f"app layer, {workers} thr" + ("" if grouped else ", no group commit"),
                workers,
                workload,
                warmup,
                app_worker(container.reports),
                expect_reason="protected",
                on_start=mark.start,
            )
            run.notes["events/report"] = f"{mark.events() / run.reports:.2f}"
            run.notes["time in save()"] = f"{meter.seconds / sum(run.latencies):.0%}"
            run.notes["conflicting saves"] = str(meter.conflicts)
            if writer.batches > batches:
                run.notes["saves per batch"] = (
                    f"{(writer.requests - requests) / (writer.batches - batches):.1f}"
                )
            report(run)
        meter.restore()

        # One process, as before --workers existed (bench.http_load measures several).
        with yingke_serve(settings_env, 1) as (base, proc):
            pid = proc.pid
            keys = register_agents(base, settings.admin_key)
            workload, warmup = workloads("http-32")
            mark = EventMark(dbname, table)
            run = drive(
                f"HTTP, {HTTP_CLIENTS} clients",
                HTTP_CLIENTS,
                workload,
                warmup,
                http_worker(base, keys),
                expect_reason="protected",
                on_start=mark.start,
                server_pid=pid,
            )
            run.notes["events/report"] = f"{mark.events() / run.reports:.2f}"
            report(run)
    finally:
        container.close()
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Turn SIGTERM into SystemExit so the server is stopped and the database dropped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.perf_counter()
    print(
        f"Yingke report-filing benchmark: {args.reports} reports per scenario, "
        f"~{COLLISION_RATE:.0%} of them a second channel reporting an already-reported buyer"
    )
    try:
        with scratch_database() as dbname:
            print_machine(dbname)
            idle_check()
            runs = run_all(dbname, args.reports, args.seed)
    except (psycopg.OperationalError, RuntimeError) as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    base1 = next(r.rate for r in runs if r.scenario.startswith("raw SQL, 1 "))
    base8 = next(r.rate for r in runs if r.scenario.startswith(f"raw SQL, {THREADS} "))
    print()
    print_runs(runs, base1, base8)
    problems = [p for r in runs for p in r.problems()]
    print(f"\ntotal wall time {time.perf_counter() - started:.1f} s (incl. set-up and warm-up)")
    if problems:
        print("\nCOUNTS WRONG:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print(
        "counts check: every scenario accepted exactly one report per buyer and rejected the rest"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
