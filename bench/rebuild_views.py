"""Rebuilding the BI views from one million events on PostgreSQL.

Run with ``python -m bench.rebuild_views [--events N] [--views a,b] [--profile]``. Needs the
PostgreSQL server on 127.0.0.1:5432 (trust auth, user ``postgres``); creates its own
database ``yingke_bench_<hex>`` and drops it at the end, even on error.

The log is written fast but for real: Client, MaskedReportPool, ReportLocator and
Principal aggregates are driven in memory through their own methods, with the
application's own filing and visit decisions (``domain.visits``), and their events are
mapped by the application's mapper and inserted with ``recorder.insert_events`` in
batches of 2,000: no HTTP, no one-save-per-command. The mix follows a sales office:
reports from several channels (some masked 前三后四, some rejected ``protected`` or
``duplicate``), visits, follow-ups with grades and next contacts, losses (战败) approved
or not, pool claims, transfers, and report and protection expiries.

Then, in this one process:

1. baselines: reading the notification log alone (``select_notifications``; and with
   ``mapper.to_domain_event``), which bounds any rebuild from above; and a naive
   follower applying ``client_overview`` one transaction per event (on the first
   20,000 events);
2. ``projections.runtime.rebuild()`` of every view on the whole log (events/s), and
   the total for rebuilding all of them one after the other, as
   ``yingke projections rebuild <view>`` would;
3. the live ``Follower`` (all views, batches of 1,000) catching up on the first 50,000.

The issue asks for at least 20,000 events/s per rebuild on this machine. If a view
falls short, the slowest one is rebuilt again under cProfile and the top of the
profile is printed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from eventsourcing.domain import Aggregate
from psycopg import sql

from bench.common import (
    conninfo,
    database_url,
    idle_check,
    print_machine,
    print_table,
    scratch_database,
)
from domain.client import Client
from domain.locator import ReportLocator
from domain.masked_pool import MaskedReportPool
from domain.policy import Policy
from domain.principal import Principal
from domain.values import Actor, PhoneKeyer, mask_phone
from domain.visits import decide_and_record_visit, file_report_on
from domain.vocabulary import LOSS_REASONS
from projections.client_overview import ClientOverview
from projections.runtime import (
    Follower,
    RebuildReport,
    Rows,
    View,
    ViewDB,
    rebuild,
    set_position,
)
from yingke.bootstrap import Container, all_views, build, migrate
from yingke.settings import load_settings

SECRET = "bench-secret-0123456789abcdef"
ADMIN_KEY = "bench-admin-key-0123456789"
TARGET = 20_000  # events/s per view rebuild, from the issue
# Events per insert_events call. Much larger batches (10,000 events, a ~6 MB array
# parameter) can hang for ever in psycopg's pipeline sync (psycopg issue #685).
INSERT_BATCH = 2_000
NAIVE_EVENTS = 20_000
FOLLOWER_EVENTS = 50_000
PROJECTS = 4
CONSULTANTS_PER_PROJECT = 12
PARTNERS = 12
# What a sealed personal-data field looks like in the log (the vault's ciphertext).
SEALED = "v1:" + "Qk9YLXNlYWxlZC1wZXJzb25hbC1kYXRh" * 3
EPOCH = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)


# ------------------------------------------------------------------ the log


def trace(actor: str, role: str) -> dict[str, Any]:
    return {"actor": {"id": actor, "role": role}, "correlation_id": f"bench-{uuid.uuid4().hex}"}


@dataclass
class Office:
    """Who works where; the streams still open for masked reports."""

    projects: list[str]
    consultants: dict[str, list[str]]
    partners: list[str]
    policy: Policy = field(default_factory=Policy)
    keyer: PhoneKeyer = field(default_factory=lambda: PhoneKeyer(SECRET.encode()))
    numbers: set[str] = field(default_factory=set)  # one buyer per number
    pools: dict[uuid.UUID, MaskedReportPool] = field(default_factory=dict)  # by pattern


class LogWriter:
    """Maps events and inserts them in batches of ``INSERT_BATCH``."""

    def __init__(self, container: Container) -> None:
        self.app = container.store
        self.pending: list[Any] = []
        self.written = 0
        self.insert_seconds = 0.0
        self.map_seconds = 0.0
        self.total_seconds = 0.0

    def add(self, *aggregates: Aggregate) -> None:
        started = time.perf_counter()
        to_stored = self.app.mapper.to_stored_event
        for aggregate in aggregates:
            self.pending.extend(to_stored(e) for e in aggregate.collect_events())
        self.map_seconds += time.perf_counter() - started
        if len(self.pending) >= INSERT_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        started = time.perf_counter()
        self.app.recorder.insert_events(self.pending)
        self.insert_seconds += time.perf_counter() - started
        self.written += len(self.pending)
        self.pending = []


def make_office(writer: LogWriter) -> Office:
    projects = [f"proj-{i + 1}" for i in range(PROJECTS)]
    consultants = {
        p: [f"cons-{p[5:]}-{j:02d}" for j in range(CONSULTANTS_PER_PROJECT)] for p in projects
    }
    partners = [f"partner-{k:02d}" for k in range(PARTNERS)]
    admin = trace("admin", "admin")
    for project, names in consultants.items():
        for j, name in enumerate(names):
            team = f"{project}-team-{j % 3}"
            writer.add(
                Principal.register(
                    name, "consultant", None, [project], f"k-{name}", EPOCH, admin, team
                )
            )
    for partner in partners:
        writer.add(
            Principal.register(
                f"agent-{partner}", "channel_agent", partner, [], f"k-{partner}", EPOCH, admin
            )
        )
    return Office(projects, consultants, partners)


class Buyer:
    """One buyer's life, told to the aggregates the way the application tells them."""

    def __init__(self, office: Office, rng: random.Random, writer: LogWriter, at: datetime) -> None:
        self.office, self.rng, self.writer, self.now = office, rng, writer, at
        self.project = rng.choice(office.projects)
        self.number = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        while self.number in office.numbers:
            self.number = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        office.numbers.add(self.number)
        self.client: Client | None = None
        self.pool: MaskedReportPool | None = None
        self.policy = office.policy

    def later(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def consultant(self) -> str:
        return self.rng.choice(self.office.consultants[self.project])

    def ensure_client(self) -> Client:
        if self.client is None:
            cid = self.office.keyer.client_id(self.project, self.number)
            self.client = Client.register(
                cid,
                project_id=self.project,
                phone_masked=mask_phone(self.number),
                phone_hash=self.office.keyer.digest(self.number),
                pii=SEALED,
                at=self.now,
                trace=trace("agent", "channel_agent"),
            )
        return self.client

    def report(self, partner: str, masked: bool = False) -> None:
        report_id = str(uuid.uuid4())
        t = trace(f"agent-{partner}", "channel_agent")
        stream: Client | MaskedReportPool
        if masked:
            if self.pool is None:
                # Other buyers share the pattern (前三后四 leaves 10^4 numbers): one stream.
                pattern = mask_phone(self.number)
                pool_id = self.office.keyer.masked_pool_id(self.project, pattern)
                self.pool = self.office.pools.get(pool_id) or MaskedReportPool.open(
                    pool_id, project_id=self.project, phone_masked=pattern, at=self.now, trace=t
                )
                self.office.pools[pool_id] = self.pool
            stream = self.pool
        else:
            stream = self.ensure_client()
        file_report_on(
            stream,
            report_id=report_id,
            partner_id=partner,
            agent_id=f"agent-{partner}",
            expected_visit_at=None,
            pii=SEALED,
            policy=self.policy,
            at=self.now,
            trace=t,
        )
        locator = ReportLocator.place(report_id, stream.id, self.project, partner, self.now, t)
        self.writer.add(stream, locator)

    def visit(self, consultant: str, partner: str | None) -> str:
        decision, touched = decide_and_record_visit(
            self.ensure_client(),
            self.pool,
            self.policy,
            visit_id=str(uuid.uuid4()),
            consultant_id=consultant,
            partner_id=partner,
            agent_id=f"agent-{partner}" if partner else None,
            pii=SEALED,
            reseal=lambda report: SEALED,
            at=self.now,
            trace=trace(consultant, "consultant"),
        )
        self.writer.add(*touched)
        return decision.kind

    def follow_ups(self, count: int) -> None:
        client = self.client
        assert client is not None
        for _ in range(count):
            if client.owner is None:
                return
            self.later(hours=self.rng.uniform(6, 24 * 6))
            owner = Actor(client.owner.consultant_id, "consultant")
            grade = self.rng.choice((None, None, "A", "B", "C"))
            ask = self.rng.random() < 0.3
            client.log_follow_up(
                actor=owner,
                follow_up_id=str(uuid.uuid4()),
                method=self.rng.choice(("call", "wechat", "sms", "visit")),
                effective=self.rng.random() < 0.7,
                next_contact_at=self.now + timedelta(days=self.rng.randint(1, 10)) if ask else None,
                grade=grade,
                pii=SEALED,
                policy=self.policy,
                at=self.now,
                trace=trace(owner.id, "consultant"),
            )
            if self.rng.random() < 0.1:
                client.change_grade(
                    owner, self.rng.choice("ABC"), "re-graded", self.policy, self.now,
                    trace(owner.id, "consultant"),
                )  # fmt: skip
        self.writer.add(client)

    def lose(self, approve: bool) -> None:
        client = self.client
        assert client is not None and client.owner is not None
        owner = Actor(client.owner.consultant_id, "consultant")
        request_id = str(uuid.uuid4())
        self.later(days=self.rng.uniform(1, 20))
        reason = self.rng.choice(LOSS_REASONS)
        client.request_loss(owner, request_id, reason, SEALED, self.now, trace(owner.id, "c"))
        self.later(hours=self.rng.uniform(1, 30))
        if approve:
            client.approve_loss(request_id, "ok", self.policy, self.now, trace("sup", "s"))
        else:
            client.reject_loss(request_id, "keep trying", self.policy, self.now, trace("sup", "s"))
        self.writer.add(client)

    def claim(self) -> None:
        client = self.client
        assert client is not None and client.in_pool
        self.later(days=self.rng.uniform(0.5, 15))
        who = self.consultant()
        client.claim(str(uuid.uuid4()), who, None, self.policy, self.now, trace(who, "c"))
        self.writer.add(client)

    def transfer(self) -> None:
        client = self.client
        assert client is not None and client.owner is not None
        to = self.consultant()
        if to == client.owner.consultant_id:
            return
        self.later(days=self.rng.uniform(1, 10))
        client.transfer(
            to=to, basis="transfer", reason="rebalancing", policy=self.policy, at=self.now,
            trace=trace("mgr", "manager"),
        )  # fmt: skip
        self.writer.add(client)

    def expire(self) -> None:
        """What the deadline processor does once report validity or protection ran out."""
        client, system = self.client, trace("system", "service")
        for stream in (client, self.pool):
            if stream is None:
                continue
            for report in list(stream.reports.values()):
                if report.status == "accepted" and report.valid_until is not None:
                    at = max(self.now, report.valid_until)
                    stream.expire_report(report.report_id, at, system)
            self.writer.add(stream)
        if client is not None and client.owner is not None and self.rng.random() < 0.3:
            self.now = max(self.now, client.owner.protected_until)
            client.expire_protection(None, self.policy, self.now, system)
            self.writer.add(client)


def live(buyer: Buyer) -> None:
    """One buyer: about 16 events on average."""
    rng, partners = buyer.rng, buyer.office.partners
    first = rng.choice(partners)
    if rng.random() < 0.06:
        buyer.report(first, masked=True)
        if rng.random() < 0.3:
            buyer.later(minutes=rng.uniform(1, 600))
            buyer.report(rng.choice(partners), masked=True)
    elif rng.random() < 0.85:
        buyer.report(first)
    if rng.random() < 0.22:  # another channel tries too: protected, or duplicate
        buyer.later(minutes=rng.uniform(1, 3000))
        buyer.report(rng.choice(partners))
    if rng.random() < 0.7:
        buyer.later(hours=rng.uniform(1, 60))
        partner = first if rng.random() < 0.8 else None
        buyer.visit(buyer.consultant(), partner)
        buyer.follow_ups(rng.choice((0, 1, 2, 2, 3, 3, 4, 5, 6)))
        client = buyer.client
        assert client is not None
        if client.owner is not None and rng.random() < 0.2:
            buyer.lose(approve=rng.random() < 0.8)
            if client.in_pool and rng.random() < 0.5:
                buyer.claim()
                if rng.random() < 0.5:
                    buyer.later(days=rng.uniform(1, 5))
                    buyer.visit(client.owner.consultant_id if client.owner else "x", None)
        if client.owner is not None and rng.random() < 0.04:
            buyer.transfer()
    buyer.later(days=rng.uniform(3, 40))
    buyer.expire()
    buyer.writer.add(*(a for a in (buyer.client, buyer.pool) if a is not None))


def write_log(container: Container, events: int, seed: int, days: float = 90) -> LogWriter:
    """``events`` events of buyers whose first report falls in ``days`` days."""
    rng = random.Random(seed)
    writer = LogWriter(container)
    office = make_office(writer)
    span = timedelta(days=days).total_seconds()
    started = time.perf_counter()
    last_print = started
    while writer.written + len(writer.pending) < events:
        at = EPOCH + timedelta(seconds=rng.uniform(0, span))
        live(Buyer(office, rng, writer, at))
        if time.perf_counter() - last_print > 15:
            last_print = time.perf_counter()
            print(f"  … {writer.written:,} events written", flush=True)
    writer.flush()
    writer.total_seconds = time.perf_counter() - started
    return writer


# ------------------------------------------------------------------ measuring


@dataclass
class Figure:
    name: str
    events: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def read_log(container: Container, decode: bool, batch: int = 10_000) -> Figure:
    app = container.store
    position, count = 0, 0
    started = time.perf_counter()
    to_domain = app.mapper.to_domain_event
    while True:
        notifications = app.recorder.select_notifications(
            start=position, limit=batch, inclusive_of_start=False
        )
        if not notifications:
            break
        if decode:
            for notification in notifications:
                to_domain(notification)
        count += len(notifications)
        position = notifications[-1].id
    name = "read log + to_domain_event" if decode else "read log (select_notifications)"
    return Figure(name, count, time.perf_counter() - started, "baseline")


def naive_client_overview(container: Container, events: int) -> Figure:
    """The obvious follower: one transaction per event, rows read and written one by one."""
    app, db, view = container.store, container.views, ClientOverview()
    reset(db, [view])
    notifications = app.recorder.select_notifications(start=1, limit=events)
    started = time.perf_counter()
    for notification in notifications:
        event = app.mapper.to_domain_event(notification)
        with db.transaction() as tx:
            if view.handles(event):
                rows = Rows(view.tables, db.dialect, tx)
                view.apply(rows, event, notification.id)
                rows.flush()
            set_position(tx, view.name, notification.id)
    seconds = time.perf_counter() - started
    reset(db, [view])
    return Figure("naive client_overview, 1 tx/event", len(notifications), seconds, "baseline")


def follower_catch_up(container: Container, events: int) -> Figure:
    views = all_views()
    reset(container.views, views)
    follower = Follower(container.store, container.views, views, batch_size=1000)
    started = time.perf_counter()
    applied = 0
    while applied < events and (count := follower.run_once()):
        applied += count
    seconds = time.perf_counter() - started
    reset(container.views, views)
    name = f"Follower, all {len(views)} views, batches of 1000"
    return Figure(name, applied, seconds, "live follower")


def reset(db: ViewDB, views: Sequence[View]) -> None:
    with db.transaction() as tx:
        for view in views:
            for table in view.tables:
                tx.execute(f"DELETE FROM {table.name}")
            set_position(tx, view.name, 0)


def profile_rebuild(container: Container, view: View) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    rebuild(container.store, container.views, view)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(18)
    return out.getvalue()


# ------------------------------------------------------------------- printing


def table_sizes(dbname: str) -> dict[str, str]:
    with psycopg.connect(conninfo(dbname)) as conn:
        rows = conn.execute(
            "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
            "WHERE relkind = 'r' AND relname LIKE %s",
            ("%events",),
        ).fetchall()
    return {str(name): str(size) for name, size in rows}


# ----------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rebuild_views",
        description="Rebuild every BI view from a large event log on PostgreSQL.",
    )
    parser.add_argument("--events", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--views",
        default="all",
        help="comma-separated view names to rebuild (default: all of them)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile the slowest rebuild even if fast enough"
    )
    args = parser.parse_args(argv)
    if args.events < NAIVE_EVENTS:
        parser.error(f"--events must be at least {NAIVE_EVENTS}")
    return args


def run(args: argparse.Namespace, dbname: str, data_dir: str) -> int:
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
        return measure(args, dbname, container)
    finally:
        container.close()


def measure(args: argparse.Namespace, dbname: str, container: Container) -> int:
    views = all_views()
    if args.views != "all":
        wanted = args.views.split(",")
        unknown = set(wanted) - {v.name for v in views}
        if unknown:
            print(f"unknown views: {sorted(unknown)}", file=sys.stderr)
            return 2
        views = [v for v in views if v.name in wanted]

    print(f"\nwriting {args.events:,} events (seed {args.seed}) …", flush=True)
    writer = write_log(container, args.events, args.seed)
    total = writer.written
    generated = writer.total_seconds
    print(
        f"wrote {total:,} events in {generated:.1f}s ({total / generated:,.0f} events/s): "
        f"mapping {writer.map_seconds:.1f}s, insert_events {writer.insert_seconds:.1f}s, "
        f"the rest driving the aggregates; {table_sizes(dbname)}",
        flush=True,
    )
    print_mix(container)

    figures = [read_log(container, decode=False), read_log(container, decode=True)]
    figures.append(naive_client_overview(container, NAIVE_EVENTS))
    print(f"baselines done: {', '.join(f'{f.name} {f.rate:,.0f}/s' for f in figures)}")

    reports: list[RebuildReport] = []
    for view in views:
        report = rebuild(container.store, container.views, view)
        reports.append(report)
        print(
            f"  rebuilt {report.view}: {report.events:,} events in {report.seconds:.1f}s "
            f"({report.events_per_second:,.0f}/s), rows {report.rows}",
            flush=True,
        )
    figures.append(follower_catch_up(container, FOLLOWER_EVENTS))

    raw = figures[1].rate
    naive = figures[2].rate
    print()
    print_table(
        ("measure", "events", "seconds", "events/s", "vs read+decode", "vs naive"),
        [
            (f.name, f"{f.events:,}", f"{f.seconds:.1f}", f"{f.rate:,.0f}", f"{f.rate / raw:.2f}",
             f"{f.rate / naive:.1f}")
            for f in figures
        ],
    )  # fmt: skip
    print()
    rows = []
    for r in reports:
        verdict = "ok" if r.events_per_second >= TARGET else "BELOW"
        rows.append(
            (
                r.view,
                f"{r.events:,}",
                f"{r.seconds:.1f}",
                f"{r.events_per_second:,.0f}",
                f"{r.events_per_second / raw:.2f}",
                f"{r.events_per_second / naive:.1f}",
                f"{sum(r.rows.values()):,}",
                verdict,
            )
        )
    all_seconds = sum(r.seconds for r in reports)
    all_events = sum(r.events for r in reports)
    rows.append(
        (
            f"all {len(reports)} views, one after another",
            f"{all_events:,}",
            f"{all_seconds:.1f}",
            f"{all_events / all_seconds:,.0f}",
            f"{all_events / all_seconds / raw:.2f}",
            f"{all_events / all_seconds / naive:.1f}",
            f"{sum(sum(r.rows.values()) for r in reports):,}",
            f"{total / all_seconds:,.0f} log events/s",
        )
    )
    print_table(
        ("rebuild()", "events", "seconds", "events/s", "vs read+decode", "vs naive", "rows",
         f"≥ {TARGET:,}/s"),
        rows,
    )  # fmt: skip
    slowest = min(reports, key=lambda r: r.events_per_second)
    holds = slowest.events_per_second >= TARGET
    print(
        f"\nrequirement (≥ {TARGET:,} events/s per view rebuild on PostgreSQL): "
        f"{'HOLDS' if holds else 'DOES NOT HOLD'} — slowest {slowest.view} at "
        f"{slowest.events_per_second:,.0f}/s"
    )
    if not holds or args.profile:
        view = next(v for v in views if v.name == slowest.view)
        print(f"\ncProfile of rebuild({view.name}) (tottime):", flush=True)
        print(profile_rebuild(container, view))
    return 0


def print_mix(container: Container) -> None:
    """Which events the log holds: event classes by share."""
    counts = dict(_topic_counts(container))
    total = sum(counts.values())
    top = sorted(counts.items(), key=lambda kv: -kv[1])
    print("event mix: " + ", ".join(f"{t.split(':')[-1]} {n / total:.1%}" for t, n in top))


def _topic_counts(container: Container) -> Iterator[tuple[str, int]]:
    settings = container.settings
    assert settings.database_url is not None
    dbname = settings.database_url.rsplit("/", 1)[1]
    with psycopg.connect(conninfo(dbname)) as conn:
        table = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_name LIKE %s",
            ("%events",),
        ).fetchone()
        assert table is not None
        rows = conn.execute(
            sql.SQL("SELECT topic, count(*) FROM {} GROUP BY topic").format(
                sql.Identifier(str(table[0]))
            )
        ).fetchall()
    for topic, count in rows:
        yield str(topic), int(count)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Turn SIGTERM into SystemExit so that the scratch database is dropped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.perf_counter()
    with scratch_database() as dbname:
        print_machine(dbname)
        idle_check()
        with tempfile.TemporaryDirectory() as data_dir:
            status = run(args, dbname, data_dir)
    print(f"\nbench finished in {time.perf_counter() - started:.0f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
