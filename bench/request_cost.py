"""CPU per request of one server process, by request kind, beside the minimal app.

Run with ``python -m bench.request_cost [--seconds S] [--profile]``. Needs ``wrk`` and
PostgreSQL on 127.0.0.1:5432; creates and drops its own database.

Both servers run as one process (``yingke serve --workers 1`` with ``YINGKE_WORKERS=none``,
so no follower shares its CPU; ``bench.minimal_app`` under uvicorn), each driven by wrk
with a few connections for a fixed time. The figure is the server process's CPU
(utime + stime from ``/proc/<pid>/stat``) divided by the requests answered: unlike
requests per second it hardly depends on what else the box is doing.

``--profile`` also samples each Yingke scenario with ``py-spy record --gil`` (only the
thread holding the GIL, i.e. Python work) and prints where the samples fell: middleware,
authentication, access checks, dependency solving, thread hops, pydantic/JSON, the
endpoint, the writer, the server (uvicorn/httptools/event loop).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import psycopg

from bench.common import conninfo, print_table, scratch_database, yingke_serve
from bench.http_load import lua, run_wrk, uptime, uvicorn_app
from bench.report_filing import bench_settings, register_agents
from yingke.bootstrap import migrate

GET = r"""
request = function()
  return wrk.format("GET", "{PATH}", {HEADERS})
end
"""

# Where a sample's innermost interesting frame is, first match from the leaf upwards.
# (module path fragment or function name, category)
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("api/deps.py:get_caller", "authentication"),
    ("domain/services/watched.py", "authentication"),
    ("domain/services/principals.py", "authentication"),
    ("api/authorization.py", "access checks"),
    ("api/access.py", "access checks"),
    ("api/validation.py:check_parameters", "parameter checks"),
    ("api/validation.py", "middleware"),
    ("api/app.py", "middleware"),
    ("api/metrics.py", "middleware"),
    ("prometheus_client", "middleware"),
    ("api/problems.py", "errors"),
    ("yingke/writer", "writer"),
    ("yingke/group_commit", "writer"),
    ("api/routers/", "endpoint"),
    ("domain/", "endpoint"),
    ("yingke/", "endpoint"),
    ("eventsourcing/", "endpoint"),
    ("psycopg", "endpoint"),
    ("pydantic", "pydantic/JSON"),
    ("fastapi/_compat", "pydantic/JSON"),
    ("serialize_response", "pydantic/JSON"),
    ("jsonable_encoder", "pydantic/JSON"),
    ("json/", "pydantic/JSON"),
    ("render (starlette/responses.py", "pydantic/JSON"),
    ("anyio/", "thread hops"),
    ("concurrent/futures", "thread hops"),
    ("threading.py", "thread hops"),
    ("starlette/concurrency.py", "thread hops"),
    ("fastapi/dependencies", "dependency solving"),
    ("fastapi/routing.py", "routing/FastAPI"),
    ("starlette/", "routing/FastAPI"),
    ("uvicorn/", "server"),
    ("httptools", "server"),
    ("asyncio/", "server"),
    ("uvloop", "server"),
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_requests(output: str) -> int:
    for line in output.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    raise RuntimeError(f"cannot read wrk's output:\n{output}")


def categorize(raw: Path) -> Counter[str]:
    """py-spy's raw (collapsed) stacks: ``frame;frame;… count`` per line, root first."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        frames = stack.split(";")
        where = "other"
        for frame in reversed(frames):
            hit = next((c for fragment, c in CATEGORIES if fragment in frame), None)
            if hit is not None:
                where = hit
                break
        counts[where] += int(number)
    return counts


def measure(
    name: str,
    base: str,
    pid: int,
    script: str,
    seconds: int,
    connections: int,
    profile: bool,
    keep: Path | None = None,
) -> tuple[str, int, float, Counter[str] | None]:
    run_wrk(base, script, 2, connections, 1)  # warm
    spy: subprocess.Popen[bytes] | None = None
    raw = Path(tempfile.mkstemp(suffix=".txt")[1])
    if profile:
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--gil",
                "--nonblocking",
                "-r",
                "250",
                "-f",
                "raw",
                "-o",
                str(raw),
                "-p",
                str(pid),
                "-d",
                str(seconds),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    before = cpu_seconds(pid)
    output = run_wrk(base, script, seconds, connections, 1)
    used = cpu_seconds(pid) - before
    counts = None
    if spy is not None:
        spy.wait(timeout=60)
        counts = categorize(raw)
    if keep is not None and counts is not None:
        shutil.move(raw, keep / (re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") + ".txt"))
    raw.unlink(missing_ok=True)
    requests = wrk_requests(output)
    return name, requests, used, counts


def get_script(path: str, key: str | None) -> str:
    headers = "{}" if key is None else '{["Authorization"] = "Bearer ' + key + '"}'
    return GET.replace("{PATH}", path).replace("{HEADERS}", headers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.request_cost")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="py-spy each Yingke scenario")
    parser.add_argument("--keep", type=Path, help="keep the collapsed stacks in this folder")
    parser.add_argument("--only", default="", help="run the scenarios whose name has this")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 1
    if args.profile and not Path(sys.executable).with_name("py-spy").exists():
        print("py-spy is not installed (pip install py-spy): no breakdown", file=sys.stderr)
        args.profile = False
    rows: list[tuple[str, int, float, Counter[str] | None]] = []
    with scratch_database("yingke_cost") as dbname:
        print(f"load average before: {uptime()}")
        with psycopg.connect(conninfo(dbname), autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE minimal_reports (id bigserial PRIMARY KEY, project_id text, "
                "partner_id text, phone text UNIQUE)"
            )
        env = {**os.environ, "BENCH_CONNINFO": conninfo(dbname)}
        with uvicorn_app("bench.minimal_app:create_app", 1, env) as base:
            pid = _listener(base)
            keys = {p: f"unused-{p}" for p in range(8)}
            for name, script in (
                ("minimal: GET /readyz", get_script("/readyz", None)),
                ("minimal: POST /v1/reports", lua("base", keys, 4, 0.0)),
            ):
                if args.only in name:
                    rows.append(
                        measure(name, base, pid, script, args.seconds, args.connections, False)
                    )
        settings, settings_env = bench_settings(dbname)
        migrate(settings)
        env = {**settings_env, "YINGKE_PG_POOL_SIZE": "4", "YINGKE_WORKERS": "none"}
        with yingke_serve(env, 1) as (base, proc):
            keys = register_agents(base, settings.admin_key)
            agent = keys[0]
            for name, script in (
                ("Yingke: GET /healthz", get_script("/healthz", None)),
                (
                    "Yingke: GET /v1/projects/p/policy (agent)",
                    get_script("/v1/projects/proj-1/policy", agent),
                ),
                ("Yingke: POST /v1/reports", lua("proj-6", keys, 6, 0.0)),
            ):
                if args.only not in name:
                    continue
                rows.append(
                    measure(
                        name,
                        base,
                        proc.pid,
                        script,
                        args.seconds,
                        args.connections,
                        args.profile,
                        args.keep,
                    )
                )
    print(f"load average after: {uptime()}\n")
    print_table(
        ["scenario", "requests", "CPU s", "CPU ms / request"],
        [[n, str(r), f"{c:.2f}", f"{1000 * c / max(r, 1):.3f}"] for n, r, c, _ in rows],
    )
    for name, _, _, counts in rows:
        if not counts:
            continue
        total = sum(counts.values())
        print(f"\n{name}: {total} GIL-holding samples")
        for where, n in counts.most_common():
            print(f"  {where:<20} {n / total:6.1%}")
    return 0


def _listener(base: str) -> int:
    """The pid of the process listening on ``base``'s port (uvicorn runs one process)."""
    port = int(base.rsplit(":", 1)[1])
    found = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(found.split("pid=", 1)[1].split(",", 1)[0])


if __name__ == "__main__":
    sys.exit(main())
