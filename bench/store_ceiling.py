"""What the store alone allows: a report's own rows written by plain SQL, beside the
issue's raw-SQL baseline, in one run (issue 15's application-layer target).

``python -m bench.store_ceiling [--reports N] [--rounds R]`` migrates a scratch database
(the real tables and indexes) and files the same kind of workload four ways, alternating
R times, on 8 threads:

- ``baseline``: the issue's raw SQL, one ``INSERT … ON CONFLICT`` row per report,
  autocommit, 8 connections (``bench.report_filing``'s worker);
- ``rows, own txn``: each report's rows in its own transaction on 8 connections, as
  eventsourcing appends: ``LOCK TABLE`` the events, read the log head and any stored
  (stream, version), insert 4 events, 4 chain rows and the subject key, commit;
- ``rows, group commit``: the same rows, but the 8 threads hand them to one writer that
  writes everything queued in one transaction (the shape of ``yingke.group_commit``);
- ``rows, no lock, no chain``: the 4 events and the key on 8 connections without the
  table lock or the chain rows: the most a lock-free store (a safe-position reader) could
  reach, before it also orders the chain.

No domain code runs: states are random bytes of the sizes a first report's events have,
the chain hashes are computed as the chain does (SHA-256), keys are random. So each
figure is a ceiling for any Python application that stores what a report must store
(ADR 0075). Per scenario it prints reports/s, the ratio to the baseline, this process's
CPU per report and the rest of the box's (PostgreSQL, mostly) per report.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue
import random
import secrets
import struct
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from bench.common import CpuSample, conninfo, print_machine, print_table, scratch_database
from bench.report_filing import (
    THREADS,
    Filing,
    Op,
    Outcome,
    PhoneSource,
    WorkerFactory,
    bench_settings,
    drive,
    make_workload,
    raw_sql_table,
    raw_sql_worker,
)
from domain.values import PhoneKeyer, normalize_phone
from yingke.bootstrap import migrate
from yingke.chain import CHAIN_TABLE
from yingke.vault import TABLE as KEYS_TABLE

EVENTS_TABLE = "yingke_events"
# The topics and state sizes of a first report's four events (two streams).
CLIENT_EVENTS = (
    ("domain.client:Client.ClientRegistered", 443),
    ("domain.client:Client.ReportFiled", 458),
    ("domain.client:Client.ReportAccepted", 343),
)
LOCATOR_EVENT = ("domain.locator:ReportLocator.ReportLocated", 412)
GENESIS = bytes(32)


@dataclass
class Rows:
    """One report's rows: (stream, version, topic, state) events and its subject key."""

    events: list[tuple[uuid.UUID, int, str, bytes]]
    subject: str
    wrapped: bytes
    ids: list[int] = field(default_factory=list)
    refused: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


def report_rows(keyer: PhoneKeyer, project_id: str, phone: str) -> Rows:
    """The buyer's stream is named by project and number, so a second report on the same
    buyer collides on (stream, version), as a second registration would."""
    client = keyer.client_id(project_id, normalize_phone(phone))
    events = [
        (client, v, topic, os.urandom(size)) for v, (topic, size) in enumerate(CLIENT_EVENTS, 1)
    ]
    events.append((uuid.uuid4(), 1, LOCATOR_EVENT[0], os.urandom(LOCATOR_EVENT[1])))
    return Rows(events, str(client), secrets.token_bytes(60))


def chain_rows(
    rows: Sequence[tuple[uuid.UUID, int, str, bytes]],
    ids: Sequence[int],
    prev: dict[tuple[uuid.UUID, int], bytes],
    head: bytes,
) -> tuple[list[tuple[uuid.UUID, int, int, bytes, bytes, bytes]], bytes]:
    """Each event's hash over its predecessor in the stream, and the log hash over the
    previous log head, as ``yingke.chain`` links them."""
    out = []
    for (stream, version, topic, state), position in zip(rows, ids, strict=True):
        before = prev.get((stream, version - 1), GENESIS)
        digest = hashlib.sha256(
            before + stream.bytes + struct.pack(">q", version) + topic.encode() + state
        ).digest()
        prev[(stream, version)] = digest
        head = hashlib.sha256(head + struct.pack(">q", position) + digest).digest()
        out.append((stream, version, position, before, digest, head))
    return out, head


TAKEN = (
    "SELECT 0, e.originator_id, e.originator_version, NULL::bytea FROM {events} e "
    "JOIN unnest(%s::uuid[], %s::bigint[]) AS k(id, v) "
    "ON e.originator_id = k.id AND e.originator_version = k.v "
    "UNION ALL (SELECT 1, NULL, position, log_hash FROM {chain} ORDER BY position DESC LIMIT 1)"
)
INSERT_EVENTS = (
    "INSERT INTO {events} (originator_id, originator_version, topic, state) "
    "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
    "RETURNING notification_id"
)
INSERT_CHAIN = (
    "INSERT INTO {chain} SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::bigint[], "
    "%b::bytea[], %b::bytea[], %b::bytea[])"
)
INSERT_KEYS = (
    "INSERT INTO {keys} (subject, wrapped) SELECT * FROM unnest(%b::text[], %b::bytea[]) "
    "ON CONFLICT DO NOTHING"
)


def statements() -> dict[str, sql.Composed]:
    names = {
        "events": sql.Identifier(EVENTS_TABLE),
        "chain": sql.Identifier(CHAIN_TABLE),
        "keys": sql.Identifier(KEYS_TABLE),
    }
    return {
        "taken": sql.SQL(TAKEN).format(**names),
        "events": sql.SQL(INSERT_EVENTS).format(**names),
        "chain": sql.SQL(INSERT_CHAIN).format(**names),
        "keys": sql.SQL(INSERT_KEYS).format(**names),
        "lock": sql.SQL("LOCK TABLE {events} IN EXCLUSIVE MODE").format(**names),
    }


def columns(items: Sequence[Sequence[Any]]) -> list[list[Any]]:
    return [list(c) for c in zip(*items, strict=True)] if items else []


def write_locked(conn: psycopg.Connection[Any], batch: Sequence[Rows], st: dict[str, Any]) -> None:
    """One transaction for ``batch`` under the table lock: read what is taken and the log
    head, leave out colliding reports, insert the rest's events, chain rows and keys."""
    keys = [(e[0], e[1]) for r in batch for e in r.events]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(st["lock"])
        cur.execute(st["taken"], ([k[0] for k in keys], [k[1] for k in keys]), prepare=True)
        taken: set[tuple[uuid.UUID, int]] = set()
        head = GENESIS
        for kind, stream, version, log_hash in cur.fetchall():
            if kind == 0:
                taken.add((stream, int(version)))
            else:
                head = bytes(log_hash)
        accepted = []
        for rows in batch:
            mine = [(e[0], e[1]) for e in rows.events]
            if any(k in taken for k in mine):
                rows.refused = True
                continue
            taken.update(mine)
            accepted.append(rows)
        if not accepted:
            return
        events = [e for r in accepted for e in r.events]
        cur.execute(st["events"], columns(events), prepare=True)
        ids = [int(row[0]) for row in cur.fetchall()]
        # The first event of a stream has no predecessor; later ones chain to the
        # earlier rows of the same batch (a first report writes versions 1-3).
        linked, _ = chain_rows(events, ids, {}, head)
        cur.execute(st["chain"], columns(linked), prepare=True)
        cur.execute(st["keys"], columns([(r.subject, r.wrapped) for r in accepted]), prepare=True)
        position = 0
        for rows in accepted:
            rows.ids = ids[position : position + len(rows.events)]
            position += len(rows.events)


def own_txn_worker(dbname: str, keyer: PhoneKeyer) -> WorkerFactory:
    @contextmanager
    def open_worker() -> Iterator[Op]:
        st = statements()
        with psycopg.connect(conninfo(dbname)) as conn:

            def op(filing: Filing) -> Outcome:
                rows = report_rows(keyer, filing.project_id, filing.phone)
                write_locked(conn, [rows], st)
                return ("rejected", "duplicate") if rows.refused else ("accepted", None)

            yield op

    return open_worker


class GroupWriter:
    """One connection; takes every queued report and writes them in one transaction."""

    def __init__(self, dbname: str) -> None:
        self._queue: queue.SimpleQueue[Rows | None] = queue.SimpleQueue()
        self._dbname = dbname
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="ceiling-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: Rows) -> Rows:
        self._queue.put(rows)
        rows.done.wait()
        if rows.error is not None:
            raise rows.error
        return rows

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        st = statements()
        with psycopg.connect(conninfo(self._dbname)) as conn:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)
                        break
                    batch.append(more)
                try:
                    write_locked(conn, batch, st)
                except BaseException as exc:  # every waiter must hear
                    for rows in batch:
                        rows.error = exc
                self.batches += 1
                for rows in batch:
                    rows.done.set()


def group_worker(writer: GroupWriter, keyer: PhoneKeyer) -> WorkerFactory:
    @contextmanager
    def open_worker() -> Iterator[Op]:
        def op(filing: Filing) -> Outcome:
            rows = writer.submit(report_rows(keyer, filing.project_id, filing.phone))
            return ("rejected", "duplicate") if rows.refused else ("accepted", None)

        yield op

    return open_worker


def unlocked_worker(dbname: str, keyer: PhoneKeyer) -> WorkerFactory:
    """Events and key only, no table lock: a collision fails on the primary key."""

    @contextmanager
    def open_worker() -> Iterator[Op]:
        st = statements()
        with psycopg.connect(conninfo(dbname)) as conn:

            def op(filing: Filing) -> Outcome:
                rows = report_rows(keyer, filing.project_id, filing.phone)
                try:
                    with conn.transaction(), conn.cursor() as cur:
                        cur.execute(st["events"], columns(rows.events), prepare=True)
                        cur.execute(
                            st["keys"], columns([(rows.subject, rows.wrapped)]), prepare=True
                        )
                except psycopg.errors.UniqueViolation:
                    return ("rejected", "duplicate")
                return ("accepted", None)

            yield op

    return open_worker


SCENARIOS = ("baseline", "rows, own txn", "rows, group commit", "rows, no lock, no chain")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_ceiling")
    parser.add_argument("--reports", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    phones = PhoneSource(rng)
    table: list[list[str]] = []
    with scratch_database("yingke_ceiling") as dbname:
        print_machine(dbname)
        settings, _ = bench_settings(dbname)
        keyer = PhoneKeyer(settings.secret)
        migrate(settings)
        for rnd in range(args.rounds):
            baseline = 0.0
            for scenario in SCENARIOS:
                tag = f"{scenario} #{rnd}"
                workload = make_workload(f"ceil-{rnd}-{len(table)}", args.reports, phones, rng)
                warmup = make_workload(f"warm-{rnd}-{len(table)}", THREADS * 4, phones, rng, False)
                writer: GroupWriter | None = None
                if scenario == "baseline":
                    raw_sql_table(dbname, f"raw_{rnd}")
                    factory = raw_sql_worker(dbname, f"raw_{rnd}", keyer)
                elif scenario == "rows, own txn":
                    factory = own_txn_worker(dbname, keyer)
                elif scenario == "rows, group commit":
                    writer = GroupWriter(dbname)
                    factory = group_worker(writer, keyer)
                else:
                    factory = unlocked_worker(dbname, keyer)
                marks: dict[str, Any] = {}

                def start(marks: dict[str, Any] = marks, w: GroupWriter | None = writer) -> None:
                    marks["cpu"] = CpuSample.take(None)
                    marks["batches"] = w.batches if w else 0

                run = drive(tag, THREADS, workload, warmup, factory, "duplicate", on_start=start)
                end = CpuSample.take(None)
                if writer is not None:
                    writer.close()
                problems = run.problems()
                began: CpuSample = marks["cpu"]
                own = (end.own - began.own) / run.reports * 1000
                rest = ((end.box_busy - began.box_busy) - (end.own - began.own)) / run.reports
                if scenario == "baseline":
                    baseline = run.rate
                per_batch = (
                    f"{run.reports / max(1, writer.batches - marks['batches']):.1f}"
                    if writer is not None
                    else "-"
                )
                table.append(
                    [
                        tag,
                        f"{run.rate:,.0f}",
                        f"{run.rate / baseline:.2f}",
                        f"{run.percentile_ms(0.99):.1f}",
                        f"{own:.3f}",
                        f"{rest * 1000:.3f}",
                        per_batch,
                        "; ".join(problems) or "ok",
                    ]
                )
                print(" | ".join(table[-1]), flush=True)
    print()
    print_table(
        (
            "scenario",
            "reports/s",
            "× baseline",
            "p99 ms",
            "this proc CPU ms/report",
            "rest of box CPU ms/report",
            "reports/batch",
            "checks",
        ),
        table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
