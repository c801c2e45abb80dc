"""CPU time of the ownership read, in process, on a database ``bench.reads --keep`` left:
a before/after figure that other load on a shared box does not inflate the way it
inflates HTTP latencies.

Run with ``python -m bench.ownership_cpu --reuse DBNAME [--asks N]``, from the checkout
to measure (it uses only ``build`` and ``Clients.ownership_as_of``, so another checkout's
code can be measured with ``PYTHONPATH`` set to it, on a database that code migrated).
It asks ownership of the long stream as of instants spread over its life (a quarter of
them after its last event), as ``bench.reads`` does, after a warm-up that takes the
snapshots and makes the process's first use of them; it prints the median and p99 of
this thread's CPU time per ask and of wall time.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta

from bench.common import percentile
from bench.reads import settings_env, written
from yingke.bootstrap import build
from yingke.settings import load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ownership_cpu")
    parser.add_argument("--reuse", metavar="DBNAME", required=True)
    parser.add_argument("--asks", type=int, default=2_000, metavar="N")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    stream = written(args.reuse).stream
    rng = random.Random(args.seed)
    span = (stream.last - stream.first).total_seconds()
    instants = [
        stream.last + timedelta(days=1)
        if i % 4 == 0
        else stream.first + timedelta(seconds=rng.uniform(0, span))
        for i in range(args.asks)
    ]
    with tempfile.TemporaryDirectory() as data_dir:
        container = build(load_settings(settings_env(args.reuse, data_dir)))
        try:
            clients = container.clients
            for at in instants[:100]:  # warm-up: snapshots taken, first uses made
                clients.ownership_as_of(stream.client_id, at)
            cpu: list[float] = []
            wall: list[float] = []
            for at in instants:
                started, ticked = time.perf_counter_ns(), time.thread_time_ns()
                clients.ownership_as_of(stream.client_id, at)
                cpu.append((time.thread_time_ns() - ticked) / 1e6)
                wall.append((time.perf_counter_ns() - started) / 1e6)
        finally:
            container.close()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"ownership as of, {stream.events:,}-event stream, {args.asks} asks: "
        f"CPU ms p50 {percentile(cpu, 0.5):.2f} p99 {percentile(cpu, 0.99):.2f}; "
        f"wall ms p50 {percentile(wall, 0.5):.2f} p99 {percentile(wall, 0.99):.2f}; load {load}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
