"""What the benchmarks share: scratch PostgreSQL databases, subprocesses (a server, a
broker) started and stopped, the machine description, timing and tables.

Nothing here measures anything by itself; each bench says what it measures.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_MAINTENANCE_DB = "test"


# ------------------------------------------------------------------ databases


def conninfo(dbname: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname} connect_timeout=5"


def database_url(dbname: str) -> str:
    """The YINGKE_DATABASE_URL of a database on the bench's server."""
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


@contextmanager
def scratch_database(prefix: str = "yingke_bench") -> Iterator[str]:
    """A fresh database, dropped WITH (FORCE) on the way out, whatever happened."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(conninfo(PG_MAINTENANCE_DB), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(conninfo(PG_MAINTENANCE_DB), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_ready(url: str) -> Callable[[], bool]:
    """Ready once ``url`` answers 200."""

    def ready() -> bool:
        try:
            return httpx.get(url, trust_env=False, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    return ready


def tcp_ready(host: str, port: int) -> Callable[[], bool]:
    """Ready once ``host:port`` accepts a connection."""

    def ready() -> bool:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
        except OSError:
            return False
        return True

    return ready


@contextmanager
def process(
    command: Sequence[str],
    ready: Callable[[], bool],
    *,
    env: dict[str, str] | None = None,
    name: str = "the process",
    timeout: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` in a subprocess, yielded once ``ready()``; terminated (killed if it
    lingers) on the way out. Its output is kept and shown if it exits early."""
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"{name} exited ({proc.returncode}):\n{log.read()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not become ready within {timeout:.0f} s")
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def yingke_serve(
    env: Mapping[str, str],
    workers: int | str = 1,
    executable: str | None = None,
    ready: str = "/readyz",
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``yingke serve`` on a free local port with ``env`` over this process's
    environment; yields its base URL and process once ``ready`` answers 200.
    ``executable``: another checkout's ``yingke`` (a before figure on the same data)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    program = [executable] if executable else [sys.executable, "-m", "yingke.cli"]
    command = [*program, "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning", "--workers", str(workers)]
    full = {**os.environ, **env}
    with process(command, http_ready(base + ready), env=full, name="yingke serve") as proc:
        yield base, proc


# ------------------------------------------------------------- timing, tables


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q ≤ 1) of ``values``."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))
    return ordered[index]


@dataclass
class Stopwatch:
    """``with Stopwatch() as watch: …`` then ``watch.seconds``."""

    started: float = 0.0
    seconds: float = 0.0

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A Markdown table: the first column left-aligned, the figures right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "| " + " | ".join([first, *rest]) + " |"

    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))


# -------------------------------------------------------------------- machine


@dataclass(frozen=True)
class CpuSample:
    """CPU counters: the box (from /proc/stat), this process, the server process."""

    wall: float
    box_busy: float  # seconds, summed over all CPUs
    box_total: float
    own: float
    server: float | None

    @classmethod
    def take(cls, server_pid: int | None) -> CpuSample:
        tick = os.sysconf("SC_CLK_TCK")
        busy = total = 0.0
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
            values = [int(v) / tick for v in fields]
            total = sum(values[:8])  # guest time is already inside user/nice
            busy = total - values[3] - values[4]  # minus idle and iowait
        except (OSError, ValueError, IndexError):
            pass
        server = None
        if server_pid is not None:
            try:
                stat = Path(f"/proc/{server_pid}/stat").read_text()
                after_name = stat.rsplit(")", 1)[1].split()
                server = (int(after_name[11]) + int(after_name[12])) / tick
            except (OSError, ValueError, IndexError):
                server = None
        return cls(time.perf_counter(), busy, total, time.process_time(), server)

    def until(self, later: CpuSample) -> dict[str, str]:
        notes: dict[str, str] = {}
        wall = later.wall - self.wall
        total = later.box_total - self.box_total
        if total > 0:
            notes["box CPU"] = f"{(later.box_busy - self.box_busy) / total:.0%} busy"
        if wall > 0:
            notes["bench proc"] = f"{(later.own - self.own) / wall:.0%} of a core"
            if self.server is not None and later.server is not None:
                notes["server proc"] = f"{(later.server - self.server) / wall:.0%} of a core"
        return notes


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_machine(dbname: str) -> None:
    settings: dict[str, str] = {}
    with psycopg.connect(conninfo(dbname)) as conn:
        for name in ("server_version", "synchronous_commit", "fsync"):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            settings[name] = str(row[0]) if row else "?"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: nproc={cpus} ({cpu_model()}), {platform.system()} {platform.release()}")
    print(
        f"python {platform.python_version()}; eventsourcing {version_of('eventsourcing')}; "
        f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}, libpq {psycopg.pq.version()}); "
        f"fastapi {version_of('fastapi')}; uvicorn {version_of('uvicorn')}; "
        f"uvloop {version_of('uvloop')}; httptools {version_of('httptools')}; "
        f"httpx {version_of('httpx')} (client)"
    )
    print(
        f"PostgreSQL {settings['server_version']} on {PG_HOST}:{PG_PORT} "
        f"(synchronous_commit={settings['synchronous_commit']}, fsync={settings['fsync']}); "
        f"database {dbname}"
    )


def idle_check() -> None:
    """Other load on the box skews every figure: say so up front."""
    before = CpuSample.take(None)
    time.sleep(1.0)
    after = CpuSample.take(None)
    total = after.box_total - before.box_total
    if total <= 0:
        return
    busy = (after.box_busy - before.box_busy) / total
    print(f"box CPU busy in the second before the run: {busy:.0%}", end="")
    print("  <- other load is running; figures will be low" if busy > 0.15 else "")
