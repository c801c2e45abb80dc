"""The two reads issue 15 sets targets for, over HTTP on PostgreSQL, each beside a baseline
measured in the same run.

Run with ``make bench-reads`` or ``python -m bench.reads [--buyers N] [--requests N]``.
Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user ``postgres``); creates its own
database ``yingke_bench_<hex>`` and drops it at the end, even on error (``--keep`` leaves
it for profiling, ``--reuse NAME`` measures one kept earlier without writing again).

The log is written as ``bench.rebuild_views`` writes it (the application's aggregates
driven in memory, inserted in batches): one buyer whose stream holds ~1,000 events
(a report, a visit, then follow-ups by the owner an hour or two apart), then
``--buyers`` buyers (default 100,000) of the same sales office, four projects of twelve
consultants, ~16 events each. The views the reads use are built with ``rebuild()``.
Then ``yingke serve`` (one process, ``YINGKE_WORKERS=none``: no follower competes) is
asked, one request at a time over a kept-alive connection:

1. ``GET /healthz`` (baseline), then ``GET /v1/clients/{id}/ownership?at=…`` on the
   long stream as its owner, ``at`` spread over the stream's life and now;
2. the SQL statements ``GET /v1/tasks`` runs for the consultant with the most buyers,
   replayed through one psycopg connection (baseline), then ``GET /v1/tasks`` as that
   consultant.

Each figure is printed with the load average read just after it: the box is shared.
The targets (issue 15) are p99 ≤ 20 ms for both reads.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from bench.common import (
    conninfo,
    database_url,
    idle_check,
    percentile,
    print_machine,
    print_table,
    scratch_database,
    yingke_serve,
)
from bench.rebuild_views import (
    CONSULTANTS_PER_PROJECT,
    EPOCH,
    PARTNERS,
    PROJECTS,
    SEALED,
    Buyer,
    LogWriter,
    Office,
    live,
    trace,
)
from domain.principal import Principal, new_key
from domain.values import Actor
from projections.queries import Scope, tasks
from projections.runtime import rebuild
from yingke.bootstrap import Container, all_views, build, migrate
from yingke.settings import load_settings

SECRET = "bench-reads-secret-0123456789abcdef"
ADMIN_KEY = "bench-reads-admin-key-0123456789"
TARGET_MS = 20.0  # p99 of both reads, from the issue
# The views the measured reads (and the EXPLAINed lists) read.
VIEWS = (
    "follow_up_tasks",
    "rule_tasks",
    "principal_directory",
    "protection_board",
    "pool_activity",
    "client_overview",
)


# ------------------------------------------------------------------ the log


def make_office(writer: LogWriter) -> tuple[Office, dict[str, str]]:
    """``bench.rebuild_views``' office, with keys the service accepts (for HTTP)."""
    projects = [f"proj-{i + 1}" for i in range(PROJECTS)]
    consultants = {
        p: [f"cons-{p[5:]}-{j:02d}" for j in range(CONSULTANTS_PER_PROJECT)] for p in projects
    }
    partners = [f"partner-{k:02d}" for k in range(PARTNERS)]
    admin = trace("admin", "admin")
    keys: dict[str, str] = {}
    for project, names in consultants.items():
        for j, name in enumerate(names):
            keys[name] = new_key(name)
            team = f"{project}-team-{j % 3}"
            writer.add(
                Principal.register(
                    name, "consultant", None, [project], keys[name], EPOCH, admin, team
                )
            )
    for partner in partners:
        name = f"agent-{partner}"
        keys[name] = new_key(name)
        writer.add(Principal.register(name, "channel_agent", partner, [], keys[name], EPOCH, admin))
    return Office(projects, consultants, partners), keys


@dataclass
class LongStream:
    client_id: uuid.UUID
    owner: str
    events: int
    first: datetime
    last: datetime


def write_long_stream(office: Office, writer: LogWriter, events: int, seed: int) -> LongStream:
    """One buyer reported, visited, then followed up until the stream holds ``events``."""
    rng = random.Random(seed)
    buyer = Buyer(office, rng, writer, EPOCH)
    buyer.report(office.partners[0])
    buyer.later(hours=2)
    owner_id = buyer.consultant()
    buyer.visit(owner_id, office.partners[0])
    client = buyer.client
    assert client is not None and client.owner is not None
    first = client.created_on
    owner = Actor(client.owner.consultant_id, "consultant")
    while client.version < events:
        # Well inside the protection window (P90D from the visit), so each is accepted.
        buyer.later(minutes=rng.uniform(20, 100))
        client.log_follow_up(
            actor=owner,
            follow_up_id=str(uuid.uuid4()),
            method=rng.choice(("call", "wechat", "sms", "visit")),
            effective=rng.random() < 0.7,
            next_contact_at=buyer.now + timedelta(days=2) if rng.random() < 0.3 else None,
            grade=rng.choice((None, None, "A", "B", "C")),
            pii=SEALED,
            policy=buyer.policy,
            at=buyer.now,
            trace=trace(owner.id, "consultant"),
        )
    writer.add(client)
    writer.flush()
    return LongStream(client.id, owner.id, client.version, first, buyer.now)


def write_buyers(office: Office, writer: LogWriter, buyers: int, seed: int) -> None:
    rng = random.Random(seed)
    span = timedelta(days=90).total_seconds()
    last_print = time.perf_counter()
    for n in range(buyers):
        live(Buyer(office, rng, writer, EPOCH + timedelta(seconds=rng.uniform(0, span))))
        if time.perf_counter() - last_print > 20:
            last_print = time.perf_counter()
            print(f"  … {n:,} buyers, {writer.written:,} events written", flush=True)
    writer.flush()


# ------------------------------------------------------------------ measuring


def load_average() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figure:
    name: str
    samples: list[float]  # seconds
    load: str
    # The server's CPU per request (None: the figure does not go through the server):
    # unlike wall time, barely moved by others' load on a shared box.
    cpu_ms: float | None = None

    def ms(self, q: float) -> float:
        return percentile(self.samples, q) * 1000


class Unavailable(Exception):
    """503 store_unavailable: the shared PostgreSQL refused a connection (it was full)."""


def timed(
    name: str,
    requests: int,
    warmup: int,
    call: Callable[[int], None],
    server: int | None = None,
) -> Figure:
    """``requests`` timed calls after ``warmup``. A call the store turned away (503, the
    shared server out of connections) is not a sample: it is counted, waited out and
    asked again, and the count is printed with the figure."""
    refused = 0

    def once(i: int) -> float:
        nonlocal refused
        for _ in range(100):
            started = time.perf_counter()
            try:
                call(i)
            except Unavailable:
                refused += 1
                time.sleep(0.5)
                continue
            return time.perf_counter() - started
        raise RuntimeError("the store stayed unavailable")

    for i in range(warmup):
        once(i)
    spent = cpu_seconds(server) if server is not None else 0.0
    samples = [once(i) for i in range(requests)]
    cpu = (cpu_seconds(server) - spent) * 1000 / requests if server is not None else None
    if refused:
        name += f" ({refused} asks refused 503 and repeated)"
    return Figure(name, samples, load_average(), cpu)


def get_ok(client: httpx.Client, url: str, **params: Any) -> None:
    response = client.get(url, params=params)
    if response.status_code == 503:
        raise Unavailable(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")


def get_json(client: httpx.Client, url: str) -> Any:
    """One answer's body, past any 503 the full shared server causes."""
    for _ in range(100):
        try:
            get_ok(client, url)
        except Unavailable:
            time.sleep(0.5)
            continue
        return client.get(url).json()
    raise RuntimeError("the store stayed unavailable")


def busiest_consultant(dbname: str) -> tuple[str, str, int]:
    """(consultant, project, buyers) of the consultant owning the most buyers."""
    with psycopg.connect(conninfo(dbname)) as conn:
        row = conn.execute(
            "SELECT consultant_id, project_id, count(*) FROM follow_up_tasks "
            "GROUP BY consultant_id, project_id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    assert row is not None, "no follow-up tasks were built"
    return str(row[0]), str(row[1]), int(row[2])


def buyer_count(dbname: str) -> int:
    """The buyers the views hold (``--reuse`` measures a database of any size)."""
    with psycopg.connect(conninfo(dbname)) as conn:
        row = conn.execute("SELECT count(*) FROM client_overview").fetchone()
    return int(row[0]) if row else 0


def tasks_statements(
    container: Container, consultant: str, project: str
) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements ``GET /v1/tasks`` runs for ``consultant`` (recorded from the same
    query functions the route calls, with the scope a consultant's guard gives)."""
    views = container.views
    recorded: list[tuple[str, tuple[Any, ...]]] = []
    query = views.query

    def recording(statement: str, params: Sequence[Any] = ()) -> list[Any]:
        recorded.append((statement, tuple(params)))
        return query(statement, params)

    setattr(views, "query", recording)  # noqa: B010 (an instance attribute shadows it)
    try:
        from projections import people

        scope = Scope(project_ids=(project,), consultant_ids=(consultant,))
        people.named(views, lambda at, size: tasks(views, scope, datetime.now(UTC), limit=size))(
            None, 50
        )
    finally:
        delattr(views, "query")
    return recorded


def explain(dbname: str, statements: list[tuple[str, tuple[Any, ...]]]) -> list[str]:
    out = []
    with psycopg.connect(conninfo(dbname)) as conn:
        for statement, params in statements:
            plan = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement,
                params,  # type: ignore[arg-type]
            ).fetchall()
            out.append(statement[:160] + "\n    " + "\n    ".join(str(r[0])[:200] for r in plan))
    return out


# ----------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reads",
        description="Ownership as of an instant and /v1/tasks over HTTP on PostgreSQL.",
    )
    parser.add_argument("--buyers", type=int, default=100_000, metavar="N")
    parser.add_argument("--stream-events", type=int, default=1_000, metavar="N")
    parser.add_argument("--requests", type=int, default=400, metavar="N")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument("--reuse", metavar="DBNAME", help="measure a database kept earlier")
    parser.add_argument(
        "--yingke",
        metavar="PATH",
        help="the yingke executable to serve with, e.g. another checkout's (a before figure)",
    )
    return parser.parse_args(argv)


@dataclass
class Written:
    stream: LongStream
    keys: dict[str, str]


def settings_env(dbname: str, data_dir: str) -> dict[str, str]:
    return {
        "YINGKE_DATABASE_URL": database_url(dbname),
        "YINGKE_DATA_DIR": data_dir,
        "YINGKE_SECRET": SECRET,
        "YINGKE_ADMIN_KEY": ADMIN_KEY,
        "YINGKE_WORKERS": "none",
    }


def write(args: argparse.Namespace, container: Container, dbname: str) -> Written:
    writer = LogWriter(container)
    office, keys = make_office(writer)
    started = time.perf_counter()
    stream = write_long_stream(office, writer, args.stream_events, args.seed)
    print(f"long stream: {stream.events:,} events on client {stream.client_id}", flush=True)
    print(f"writing {args.buyers:,} buyers (seed {args.seed}) …", flush=True)
    write_buyers(office, writer, args.buyers, args.seed)
    print(f"wrote {writer.written:,} events in {time.perf_counter() - started:.0f}s", flush=True)
    for view in all_views():
        if view.name in VIEWS:
            report = rebuild(container.store, container.views, view)
            print(f"  rebuilt {report.view}: {report.rows} in {report.seconds:.1f}s", flush=True)
    # What --reuse needs to measure again without writing.
    with psycopg.connect(conninfo(dbname)) as conn:
        conn.execute(
            "CREATE TABLE bench_reads (client_id uuid, owner text, events int, "
            "first_at timestamptz, last_at timestamptz, keys jsonb)"
        )
        conn.execute(
            "INSERT INTO bench_reads VALUES (%s, %s, %s, %s, %s, %s)",
            (
                stream.client_id,
                stream.owner,
                stream.events,
                stream.first,
                stream.last,
                Jsonb(keys),
            ),
        )
    return Written(stream, keys)


def written(dbname: str) -> Written:
    with psycopg.connect(conninfo(dbname)) as conn:
        row = conn.execute("SELECT * FROM bench_reads").fetchone()
    assert row is not None
    client_id, owner, events, first, last, keys = row
    return Written(LongStream(client_id, owner, events, first, last), keys)


def measure(args: argparse.Namespace, dbname: str, container: Container, found: Written) -> int:
    stream = found.stream
    consultant, project, buyers = busiest_consultant(dbname)
    population = buyer_count(dbname)
    statements = tasks_statements(container, consultant, project)
    env = {**os.environ, **settings_env(dbname, str(container.settings.data_dir))}
    rng = random.Random(args.seed)
    span = (stream.last - stream.first).total_seconds()
    # A quarter of the asks are "now" (no at), the rest spread over the stream's life.
    instants = [
        None if i % 4 == 0 else (stream.first + timedelta(seconds=rng.uniform(0, span)))
        for i in range(args.requests + 20)
    ]
    figures: list[Figure] = []
    with yingke_serve(env, 1, args.yingke, ready="/healthz") as (base, served):
        pid = served.pid
        owner = httpx.Client(
            base_url=base,
            trust_env=False,
            timeout=30,
            headers={"Authorization": f"Bearer {found.keys[stream.owner]}"},
        )
        who = httpx.Client(
            base_url=base,
            trust_env=False,
            timeout=30,
            headers={"Authorization": f"Bearer {found.keys[consultant]}"},
        )
        with owner, who:
            url = f"/v1/clients/{stream.client_id}/ownership"

            def ownership(i: int) -> None:
                at = instants[i % len(instants)]
                get_ok(owner, url, **({"at": at.isoformat()} if at else {}))

            body = get_json(owner, url)
            print(f"ownership now: {body['owner']['consultant_id']}, v{body['integrity']}")
            page = get_json(who, "/v1/tasks")
            print(f"/v1/tasks for {consultant}: {len(page['items'])} items on the first page")
            with psycopg.connect(conninfo(dbname), autocommit=True) as conn:

                def sql_page(i: int) -> None:
                    for statement, params in statements:
                        conn.execute(statement, params, prepare=True).fetchall()  # type: ignore[arg-type]

                for _ in range(2):  # two rounds: a second look at noise on a shared box
                    figures.append(
                        timed("GET /healthz (baseline)", args.requests, 20,
                              lambda i: get_ok(owner, "/healthz"), pid)
                    )  # fmt: skip
                    figures.append(
                        timed(f"GET ownership?at=, {stream.events:,}-event stream",
                              args.requests, 20, ownership, pid)
                    )  # fmt: skip
                    figures.append(
                        timed(f"/v1/tasks SQL via psycopg ({len(statements)} statements, "
                              "baseline)", args.requests, 20, sql_page)
                    )  # fmt: skip
                    figures.append(
                        timed(f"GET /v1/tasks, {consultant}: {buyers:,} tasks of "
                              f"{population:,} buyers", args.requests, 20,
                              lambda i: get_ok(who, "/v1/tasks"), pid)
                    )  # fmt: skip
    rows = []
    for i, f in enumerate(figures):
        base_figure = figures[i - i % 2]
        ratio = f.ms(0.5) / base_figure.ms(0.5)
        verdict = "" if i % 2 == 0 else ("ok" if f.ms(0.99) <= TARGET_MS else "MISSED")
        rows.append(
            (
                f.name,
                f"{f.ms(0.5):.2f}",
                f"{f.ms(0.99):.2f}",
                f"×{ratio:.1f}" if i % 2 else "1",
                verdict,
                f"{f.cpu_ms:.2f}" if f.cpu_ms is not None else "–",
                f.load,
            )
        )
    print()
    print_table(
        ("measure (one request at a time)", "p50 ms", "p99 ms", "p50 vs baseline",
         f"p99 ≤ {TARGET_MS:.0f} ms", "server CPU ms/req", "load avg"),
        rows,
    )  # fmt: skip
    print("\nEXPLAIN of the /v1/tasks statements:")
    for plan in explain(dbname, statements):
        print(plan)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as data_dir:
        if args.reuse:
            status = run(args, args.reuse, data_dir, reuse=True)
        else:
            with keep_or_scratch(args.keep) as dbname:
                status = run(args, dbname, data_dir, reuse=False)
    print(f"\nbench finished in {time.perf_counter() - started:.0f}s")
    return status


@contextmanager
def keep_or_scratch(keep: bool) -> Iterator[str]:
    if not keep:
        with scratch_database() as dbname:
            yield dbname
        return
    name = f"yingke_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(conninfo("test"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    print(f"keeping database {name} (drop it by hand)")
    yield name


def run(args: argparse.Namespace, dbname: str, data_dir: str, reuse: bool) -> int:
    print_machine(dbname)
    idle_check()
    print(f"load average at start: {load_average()}")
    settings = load_settings(settings_env(dbname, data_dir))
    # A kept database is brought to this checkout's schema too (the snapshot table's key
    # changed with ADR 0068; without this every snapshot write would fail and be logged).
    migrate(settings)
    container = build(settings)
    try:
        found = written(dbname) if reuse else write(args, container, dbname)
        return measure(args, dbname, container, found)
    finally:
        container.close()


if __name__ == "__main__":
    sys.exit(main())
