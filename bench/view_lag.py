"""Commit → view row: how long after its 201 a report is in ``report_log`` and
``client_overview``, under a paced (open-loop) filing rate.

Run with ``make bench-view-lag`` or ``python -m bench.view_lag [--rate 200] [--seconds 30]``.
Needs the PostgreSQL server on 127.0.0.1:5432 (trust auth, user ``postgres``); creates
its own database and drops it at the end.

``yingke serve`` runs as in the scaled topology on PostgreSQL: ``--workers`` HTTP
processes (default 2) and, in the supervising process, the in-process follower that
projects the views. Client threads send ``POST /v1/reports`` on a fixed schedule (report
*i* is due at ``start + i / rate``, whatever the answers before it took), so a slow
server shows up as lag and as sends behind schedule rather than as a lower offered rate.

Each 201 carries ``Yingke-Position``, the position of the last event its save wrote. A
watcher polls the follower's tracking rows (written in the same transaction as the view
rows, ADR 0015) every ``--poll`` seconds; a report's lag is the time from its 201 until
both ``report_log`` and ``client_overview`` have reached its position. The poll interval
bounds the resolution. At the end every accepted report id is checked to be in
``report_log``.

Phases, one server, one database: a low rate first (the reference in the same run),
then the target rate. Then, unless ``--no-no-follower-phase``, the target rate again on
a second server over the same database started with ``YINGKE_WORKERS=none``: its HTTP
p99 against the followed phase's says how much following costs the requests.

Each phase also reads, from /proc, the CPU seconds ``yingke serve``'s supervising
process (where the follower runs) and its HTTP processes used from the first send until
the views caught up, per acknowledged report: on this shared box they vary far less
than times do, so they compare versions measured minutes apart.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import os
import queue
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import psycopg

from bench import common
from bench.common import (
    conninfo,
    percentile,
    print_machine,
    scratch_database,
    yingke_serve,
)
from bench.report_filing import (
    Filing,
    PhoneSource,
    bench_settings,
    make_workload,
    register_agents,
)
from yingke.bootstrap import migrate

VIEWS = ("report_log", "client_overview")
POSITION_HEADER = "Yingke-Position"


@dataclass
class Phase:
    name: str
    rate: float
    seconds: float
    sent: int = 0
    acked: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    behind: list[float] = field(default_factory=list)  # how late each send left
    lags: list[float] = field(default_factory=list)
    report_ids: list[str] = field(default_factory=list)
    first_send: float = 0.0
    last_ack: float = 0.0
    load: tuple[str, str] = ("", "")
    # CPU seconds from the first send until the views caught up: the supervising
    # process (the follower, and the deadline and notification loops) and its HTTP
    # processes. Unlike times, these hold however loaded the shared box is.
    follower_cpu: float = 0.0
    http_cpu: float = 0.0


class Watcher:
    """Polls the views' tracking positions; times each acknowledged position."""

    def __init__(self, dbname: str, poll: float) -> None:
        self._conn = psycopg.connect(conninfo(dbname), autocommit=True)
        self._poll = poll
        self._incoming: queue.SimpleQueue[tuple[int, float, list[float]]] = queue.SimpleQueue()
        self._waiting: list[tuple[int, float, int, list[float]]] = []
        self._tie = itertools.count()
        self._stop = threading.Event()
        self.polls = 0
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self._thread.start()

    def expect(self, position: int, acked_at: float, into: list[float]) -> None:
        self._incoming.put((position, acked_at, into))

    def pending(self) -> int:
        return len(self._waiting) + self._incoming.qsize()

    def _position(self) -> int:
        rows = self._conn.execute(
            "SELECT view, position FROM projection_tracking WHERE view = ANY(%s)", (list(VIEWS),)
        ).fetchall()
        found = {str(r[0]): int(r[1]) for r in rows}
        return min(found.get(v, 0) for v in VIEWS)

    def _run(self) -> None:
        while not self._stop.is_set():
            reached = self._position()
            now = time.perf_counter()
            self.polls += 1
            while True:
                try:
                    position, acked_at, into = self._incoming.get_nowait()
                except queue.Empty:
                    break
                heapq.heappush(self._waiting, (position, acked_at, next(self._tie), into))
            while self._waiting and self._waiting[0][0] <= reached:
                _, acked_at, _, into = heapq.heappop(self._waiting)
                into.append(max(0.0, now - acked_at))
            self._stop.wait(self._poll)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid:
                found.append(int(entry))
    return found


def serve_cpu(server: int) -> tuple[float, float]:
    """CPU seconds of ``yingke serve``'s supervising process and of its children."""
    return process_cpu(server), sum(process_cpu(child) for child in children(server))


def run_phase(
    phase: Phase,
    filings: Sequence[Filing],
    base: str,
    keys: dict[int, str],
    watcher: Watcher | None,
    clients: list[httpx.Client],
    server: int | None = None,
) -> None:
    """Send ``filings`` at ``phase.rate`` per second, one thread per client (the
    clients are made, and their connections opened, before any phase starts). With no
    ``watcher`` (no follower), only the answers are timed."""
    counter = itertools.count()
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    phase.first_send = start

    def work(client: httpx.Client) -> None:
        while (i := next(counter)) < len(filings):
            due = start + i / phase.rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            filing = filings[i]
            sent = time.perf_counter()
            try:
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
            except httpx.HTTPError as exc:
                with lock:
                    phase.errors.append(repr(exc))
                continue
            acked = time.perf_counter()
            if response.status_code != 201 or POSITION_HEADER not in response.headers:
                with lock:
                    phase.errors.append(f"{response.status_code} {response.text[:200]}")
                continue
            if watcher is not None:
                watcher.expect(int(response.headers[POSITION_HEADER]), acked, phase.lags)
            with lock:
                phase.sent += 1
                phase.acked += 1
                phase.latencies.append(acked - sent)
                phase.behind.append(max(0.0, sent - due))
                phase.report_ids.append(str(response.json()["report_id"]))
                phase.last_ack = max(phase.last_ack, acked)

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    load_before = loadavg()
    cpu_before = serve_cpu(server) if server is not None else (0.0, 0.0)
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    # Wait (bounded) for the follower to catch up with every acknowledged report.
    deadline = time.monotonic() + 120
    while watcher is not None and watcher.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    phase.load = (load_before, loadavg())
    if server is not None:
        cpu_after = serve_cpu(server)
        phase.follower_cpu = cpu_after[0] - cpu_before[0]
        phase.http_cpu = cpu_after[1] - cpu_before[1]


def loadavg() -> str:
    """The 1-minute load average (2 cores here: above 2 is queueing for CPU)."""
    with open("/proc/loadavg") as handle:
        return handle.read().split()[0]


def missing_rows(dbname: str, report_ids: list[str]) -> int:
    with psycopg.connect(conninfo(dbname)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM unnest(%s::text[]) AS r(id) "
            "WHERE NOT EXISTS (SELECT 1 FROM report_log l WHERE l.report_id::text = r.id)",
            (report_ids,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def ms(values: Sequence[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:,.0f}" if values else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.view_lag", description=__doc__)
    parser.add_argument("--rate", type=float, default=200, help="target reports/s (200)")
    parser.add_argument("--seconds", type=float, default=30, help="target phase length (30)")
    parser.add_argument("--base-rate", type=float, default=20, help="reference rate (20)")
    parser.add_argument("--base-seconds", type=float, default=10, help="reference length (10)")
    parser.add_argument("--workers", type=int, default=2, help="HTTP processes (2)")
    parser.add_argument("--pool", type=int, default=4, help="YINGKE_PG_POOL_SIZE (4)")
    parser.add_argument("--clients", type=int, default=96, help="client threads (96)")
    parser.add_argument("--poll", type=float, default=0.005, help="tracking poll, s (0.005)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--no-follower-phase",
        dest="unfollowed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the target rate again on a server without its follower (YINGKE_WORKERS=none)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    rng = random.Random(args.seed)
    phones = PhoneSource(rng)
    phases = [
        Phase(f"reference, {args.base_rate:g}/s", args.base_rate, args.base_seconds),
        Phase(f"target, {args.rate:g}/s", args.rate, args.seconds),
    ]
    # Does following starve the requests? The same rate on a server that does not follow.
    unfollowed = Phase(f"target, {args.rate:g}/s, no follower", args.rate, args.seconds)
    print(
        f"Yingke commit → view row: paced POST /v1/reports, serve --workers {args.workers} "
        f"with its in-process follower, pool {args.pool}, {args.clients} client threads, "
        f"poll {args.poll * 1000:g} ms"
    )
    problems: list[str] = []
    try:
        with scratch_database() as dbname:
            print_machine(dbname)
            settings, env = bench_settings(dbname)
            migrate(settings)
            serving = {
                **env,
                "YINGKE_WORKERS": "inprocess",
                # The PostgreSQL server is shared: 3 processes with the default pools can
                # ask for more connections than it has left.
                "YINGKE_PG_POOL_SIZE": str(args.pool),
            }
            with yingke_serve(serving, args.workers) as (base, proc):
                keys = register_agents(base, settings.admin_key)
                watcher = Watcher(dbname, args.poll)
                clients = [
                    httpx.Client(base_url=base, trust_env=False, timeout=120)
                    for _ in range(args.clients)
                ]
                try:
                    # Every client sends once, so every connection is open before timing.
                    warm = make_workload("lag-warmup", args.clients, phones, rng, collisions=False)
                    run_phase(Phase("warm-up", 50, 1), warm.filings, base, keys, watcher, clients)
                    for n, phase in enumerate(phases):
                        size = max(1, round(phase.rate * phase.seconds))
                        workload = make_workload(f"lag-{n}", size, phones, rng)
                        print(f"  {phase.name}: {size} reports …", flush=True)
                        run_phase(phase, workload.filings, base, keys, watcher, clients, proc.pid)
                        missing = missing_rows(dbname, phase.report_ids)
                        if missing or phase.errors or len(phase.lags) != phase.acked:
                            problems.append(
                                f"{phase.name}: {missing} rows missing, {len(phase.errors)} "
                                f"errors {phase.errors[:3]}, {phase.acked - len(phase.lags)} "
                                "never seen in the views"
                            )
                finally:
                    watcher.close()
                    for client in clients:
                        client.close()
            if args.unfollowed:
                alone = {**serving, "YINGKE_WORKERS": "none"}
                with yingke_serve(alone, args.workers) as (base, proc):
                    clients = [
                        httpx.Client(base_url=base, trust_env=False, timeout=120)
                        for _ in range(args.clients)
                    ]
                    try:
                        warm = make_workload(
                            "lag-warmup-2", args.clients, phones, rng, collisions=False
                        )
                        run_phase(Phase("warm-up", 50, 1), warm.filings, base, keys, None, clients)
                        size = max(1, round(unfollowed.rate * unfollowed.seconds))
                        workload = make_workload("lag-alone", size, phones, rng)
                        print(f"  {unfollowed.name}: {size} reports …", flush=True)
                        run_phase(unfollowed, workload.filings, base, keys, None, clients, proc.pid)
                        if unfollowed.errors:
                            problems.append(f"{unfollowed.name}: errors {unfollowed.errors[:3]}")
                    finally:
                        for client in clients:
                            client.close()
                phases.append(unfollowed)
    except (psycopg.OperationalError, RuntimeError) as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    rows = []
    for phase in phases:
        span = max(phase.last_ack - phase.first_send, 1e-9)
        rows.append(
            (
                phase.name,
                str(phase.acked),
                f"{phase.acked / span:,.0f}",
                ms(phase.latencies, 0.5),
                ms(phase.latencies, 0.99),
                ms(phase.behind, 0.99),
                ms(phase.lags, 0.5),
                ms(phase.lags, 0.99),
                f"{max(phase.lags) * 1000:,.0f}" if phase.lags else "-",
                f"{phase.follower_cpu / max(phase.acked, 1) * 1000:.2f}",
                f"{phase.http_cpu / max(phase.acked, 1) * 1000:.2f}",
                f"{phase.load[0]} → {phase.load[1]}",
            )
        )
    print()
    common.print_table(
        (
            "phase",
            "201s",
            "achieved/s",
            "HTTP p50 ms",
            "HTTP p99 ms",
            "send late p99 ms",
            "lag p50 ms",
            "lag p99 ms",
            "lag max ms",
            "supervisor CPU ms/report",
            "HTTP CPU ms/report",
            "load avg",
        ),
        rows,
    )
    if problems:
        print("\nPROBLEMS:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print("\nevery acknowledged report reached report_log and client_overview")
    return 0


if __name__ == "__main__":
    sys.exit(main())
