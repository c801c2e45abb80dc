"""HTTP report filing under wrk, beside a minimal FastAPI + one INSERT in the same run.

Run with ``make bench-http`` or ``python -m bench.http_load [--seconds S] [--workers N]``.
Needs ``wrk`` (Debian: ``apt-get install wrk``) and PostgreSQL on 127.0.0.1:5432; creates
and drops its own database.

Scenarios, one after another, each on fresh phone numbers and its own project:

1. baseline: ``bench.minimal_app`` (FastAPI, one ``INSERT … ON CONFLICT DO NOTHING`` per
   request) under uvicorn with the same processes, uvloop and httptools as ``yingke
   serve``; the same wrk script.
1a. ceiling (``--no-ceiling`` skips it): ``bench.ceiling_app``, the same minimal app
   storing a report's own rows (4 events, 4 chain rows under the table lock, a subject
   key) through one group-commit writer per process, each batch one round trip (the
   chain hashed in SQL), with no domain code: the most any
   application keeping Yingke's store could answer (ADR 0075).
2. Yingke, distinct buyers: ``POST /v1/reports`` through ``yingke serve --workers N``.
3. Yingke, launch day: 2% of reports name one of 20 hot buyers that every channel
   reports at once (开盘), so their reports race on the same streams.

wrk counts answers by status inside its Lua script; afterwards the bench checks that
every report answered 201 is stored (one ``ReportFiled`` event each) and that every
answer was a 201: nothing acknowledged is lost. (One winner per race is proven by
tests/integration/test_concurrency_pg.py; here the hot buyers only make the races.)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.common import (
    conninfo,
    free_port,
    http_ready,
    print_machine,
    print_table,
    process,
    scratch_database,
    yingke_serve,
)
from bench.report_filing import PARTNERS, bench_settings, events_table, register_agents
from bench.store_ceiling import install_append_function
from yingke.bootstrap import migrate

HOT_BUYERS = 20

LUA = r"""
local partners = {PARTNERS}
local keys = {KEYS}
local project = "{PROJECT}"
local hot_share = {HOT_SHARE}
local run_digit = {RUN_DIGIT}
local counter = 0
local next_id = 0
local threads = {}
setup = function(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
init = function(args)
  math.randomseed(tid * 7919 + 17)
  accepted, rejected, other = 0, 0, 0
end
request = function()
  counter = counter + 1
  local p = (counter + tid) % #partners + 1
  local phone
  if math.random() < hot_share then
    phone = string.format("1%d9%08d", run_digit, math.random(0, {HOT} - 1))
  else
    phone = string.format("1%d%d%08d", run_digit, tid, counter)
  end
  local body = string.format(
    '{"project_id":"%s","partner_id":"partner-%d","agent_id":"agent-%d",' ..
    '"client_name":"张三丰","phone":"%s"}', project, partners[p], partners[p], phone)
  return wrk.format("POST", "/v1/reports",
    {["Authorization"] = "Bearer " .. keys[p], ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  if status == 201 and string.find(body, '"status":"accepted"', 1, true) then
    accepted = accepted + 1
  elseif status == 201 then
    rejected = rejected + 1
  else
    other = other + 1
    if other <= 2 then
      io.write("non-201: " .. status .. " " .. string.sub(body, 1, 300) .. "\n")
    end
  end
end
done = function(summary, latency, requests)
  local a, r, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted"); r = r + t:get("rejected"); o = o + t:get("other")
  end
  io.write(string.format("COUNTS accepted=%d rejected=%d other=%d\n", a, r, o))
end
"""


@dataclass
class Result:
    scenario: str
    rps: float
    p50: float
    p99: float
    accepted: int
    rejected: int
    other: int
    uptime: str

    @property
    def answered(self) -> int:
        return self.accepted + self.rejected


def lua(project: str, keys: dict[int, str], run_digit: int, hot_share: float) -> str:
    script = LUA
    for name, value in {
        "{PARTNERS}": "{" + ",".join(str(p) for p in sorted(keys)) + "}",
        "{KEYS}": "{" + ",".join(f'"{keys[p]}"' for p in sorted(keys)) + "}",
        "{PROJECT}": project,
        "{HOT_SHARE}": str(hot_share),
        "{RUN_DIGIT}": str(run_digit),
        "{HOT}": str(HOT_BUYERS),
    }.items():
        script = script.replace(name, value)
    return script


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise RuntimeError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(base: str, script: str, seconds: int, connections: int, threads: int) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        path = handle.name
    try:
        done = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "--timeout",
                "30s",
                "-s",
                path,
                base,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(path)
    return done.stdout


def parse(scenario: str, output: str) -> Result:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    counts = re.search(r"COUNTS accepted=(\d+) rejected=(\d+) other=(\d+)", output)
    for line in re.findall(r"^non-201: .*$", output, re.M)[:4]:
        print(f"  {scenario}: {line}")
    if not (rps and p50 and p99 and counts):
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return Result(
        scenario,
        float(rps.group(1)),
        _ms(p50.group(1)),
        _ms(p99.group(1)),
        int(counts.group(1)),
        int(counts.group(2)),
        int(counts.group(3)),
        uptime(),
    )


def uptime() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


@contextmanager
def uvicorn_app(
    target: str, workers: int, env: dict[str, str], factory: bool = True
) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if factory:
        command.append("--factory")
    base = f"http://127.0.0.1:{port}"
    with process(command, http_ready(f"{base}/readyz"), env=env, name=target):
        yield base


def head(dbname: str, table: str) -> int:
    with psycopg.connect(conninfo(dbname)) as conn:
        row = conn.execute(f"SELECT COALESCE(MAX(notification_id), 0) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def stored_reports(dbname: str, table: str, after: int) -> int:
    """How many ReportFiled events the store holds past position ``after``."""
    with psycopg.connect(conninfo(dbname)) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE topic = 'domain.client:Client.ReportFiled' "
            "AND notification_id > %s",
            (after,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_load")
    parser.add_argument("--seconds", type=int, default=20, help="measured seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="server processes (both)"
    )
    parser.add_argument("--pool", type=int, default=6, help="YINGKE_PG_POOL_SIZE")
    parser.add_argument(
        "--ceiling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also serve bench.ceiling_app: a report's own rows with no domain code",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 1
    results: list[Result] = []
    problems: list[str] = []
    with scratch_database() as dbname:
        print_machine(dbname)
        print(
            f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s; "
            f"{args.workers} server processes; load average before: {uptime()}"
        )
        with psycopg.connect(conninfo(dbname), autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE minimal_reports (id bigserial PRIMARY KEY, project_id text, "
                "partner_id text, phone text UNIQUE)"
            )
        keys = {p: f"unused-{p}" for p in range(PARTNERS)}
        settings, settings_env = bench_settings(dbname)
        migrate(settings)
        table = events_table(dbname)
        env = {
            **os.environ,
            **settings_env,
            "BENCH_CONNINFO": conninfo(dbname),
            "BENCH_DBNAME": dbname,
        }
        with uvicorn_app("bench.minimal_app:create_app", args.workers, env) as base:
            run_wrk(base, lua("warm", keys, 3, 0.0), 3, args.connections, args.threads)
            output = run_wrk(
                base, lua("base", keys, 4, 0.02), args.seconds, args.connections, args.threads
            )
            results.append(parse("minimal FastAPI + one INSERT (2% hot)", output))
        if args.ceiling:
            # The same minimal app storing a report's own rows (bench.ceiling_app): what
            # any application keeping Yingke's store could answer at most (ADR 0075).
            with psycopg.connect(conninfo(dbname)) as conn:
                install_append_function(conn)
            with uvicorn_app("bench.ceiling_app:create_app", args.workers, env) as base:
                run_wrk(base, lua("warm-c", keys, 8, 0.0), 3, args.connections, args.threads)
                mark = head(dbname, table)
                output = run_wrk(
                    base, lua("ceil", keys, 9, 0.02), args.seconds, args.connections, args.threads
                )
                result = parse("minimal FastAPI + a report's rows (ceiling)", output)
                results.append(result)
                filed = stored_reports(dbname, table, mark)
                if filed < result.accepted:
                    problems.append(f"ceiling: {result.accepted} accepted, {filed} stored")
        # Few connections per process: the box's PostgreSQL is shared (max_connections).
        env = {**os.environ, **settings_env, "YINGKE_PG_POOL_SIZE": str(args.pool)}
        with yingke_serve(env, args.workers) as (base, _):
            keys = register_agents(base, settings.admin_key)
            run_wrk(base, lua("warm", keys, 5, 0.0), 3, args.connections, args.threads)
            for name, digit, share in (
                ("Yingke, distinct buyers", 6, 0.0),
                ("Yingke, launch day (2% hot)", 7, 0.02),
            ):
                project = f"proj-{digit}"
                mark = head(dbname, table)
                output = run_wrk(
                    base,
                    lua(project, keys, digit, share),
                    args.seconds,
                    args.connections,
                    args.threads,
                )
                result = parse(name, output)
                results.append(result)
                time.sleep(0.5)
                filed = stored_reports(dbname, table, mark)
                if filed < result.answered:
                    problems.append(f"{name}: {result.answered} answered 201, {filed} stored")
                if result.other:
                    problems.append(f"{name}: {result.other} answers other than 201")
                print(f"  {name}: {result.answered} answered 201, {filed} ReportFiled stored")
    base_rps = results[0].rps
    base_p99 = results[0].p99
    print()
    print_table(
        [
            "scenario",
            "rps",
            "p50 ms",
            "p99 ms",
            "accepted",
            "rejected",
            "other",
            "vs baseline rps",
            "p99 vs baseline",
            "load avg",
        ],
        [
            [
                r.scenario,
                f"{r.rps:,.0f}",
                f"{r.p50:.1f}",
                f"{r.p99:.1f}",
                str(r.accepted),
                str(r.rejected),
                str(r.other),
                f"{r.rps / base_rps:.2f}",
                f"{r.p99 / base_p99:.2f}",
                r.uptime,
            ]
            for r in results
        ],
    )
    if problems:
        print("\nPROBLEMS:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
