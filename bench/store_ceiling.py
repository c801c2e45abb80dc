"""What the store alone allows: a report's own rows written by plain SQL, beside the
issue's raw-SQL baseline, in one run (issue 15's application-layer target).

``python -m bench.store_ceiling [--reports N] [--rounds R]`` migrates a scratch database
(the real tables and indexes) and files the same kind of workload five ways, alternating
R times, on 8 threads:

- ``baseline``: the issue's raw SQL, one ``INSERT … ON CONFLICT`` row per report,
  autocommit, 8 connections (``bench.report_filing``'s worker);
- ``rows, own txn``: each report's rows in its own transaction on 8 connections, as
  eventsourcing appends: ``LOCK TABLE`` the events, read the log head and any stored
  (stream, version), insert 4 events, 4 chain rows and the subject key, commit;
- ``rows, group commit``: the same rows, but the 8 threads hand them to one writer that
  writes everything queued in one transaction (the shape of ``yingke.group_commit``, in
  three round trips as before ADR 0071: lock and read, insert events, chain and keys);
- ``rows, group commit, one trip``: the same, the batch's conflict check, inserts and
  chain in one SQL function, so the writer's transaction is one round trip;
- ``rows, no lock, no chain``: the 4 events and the key on 8 connections, each report one
  statement in autocommit (one round trip) without the table lock or the chain rows: the
  most a lock-free store (a safe-position reader) could reach, before it also orders and
  chains the log somewhere else.

No domain code runs: states are random bytes of the sizes a first report's events have,
the chain hashes are `yingke.chain`'s own (SHA-256), keys are random. So each
figure is a ceiling for any Python application that stores what a report must store
(ADR 0075). Per scenario it prints reports/s, the ratio to the baseline, this process's
CPU per report and the rest of the box's (PostgreSQL, mostly) per report.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import secrets
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
from yingke.chain import CHAIN_TABLE, GENESIS, event_hash, log_hash
from yingke.vault import TABLE as KEYS_TABLE

EVENTS_TABLE = "yingke_events"
# The topics and state sizes of a first report's four events (two streams).
CLIENT_EVENTS = (
    ("domain.client:Client.ClientRegistered", 443),
    ("domain.client:Client.ReportFiled", 458),
    ("domain.client:Client.ReportAccepted", 343),
)
LOCATOR_EVENT = ("domain.locator:ReportLocator.ReportLocated", 412)


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
    rows: Sequence[tuple[uuid.UUID, int, str, bytes]], ids: Sequence[int], head: bytes
) -> list[tuple[uuid.UUID, int, int, bytes, bytes, bytes]]:
    """Each event's hash over its predecessor in the stream (an earlier row of the same
    batch, or none: a first report's streams are new), and the log hash over the previous
    log head: ``yingke.chain``'s own functions."""
    prev: dict[tuple[uuid.UUID, int], bytes] = {}
    out = []
    for (stream, version, topic, state), position in zip(rows, ids, strict=True):
        before = prev.get((stream, version - 1), GENESIS)
        digest = event_hash(stream, version, position, topic, state, before)
        prev[(stream, version)] = digest
        head = log_hash(head, position, digest)
        out.append((stream, version, position, before, digest, head))
    return out


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


def statements() -> dict[str, Any]:
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
        "unlocked": sql.SQL(
            "WITH ev AS (INSERT INTO {events} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id), "
            "ky AS (INSERT INTO {keys} (subject, wrapped) "
            "SELECT * FROM unnest(%b::text[], %b::bytea[]) ON CONFLICT DO NOTHING "
            "RETURNING subject) "
            "SELECT (SELECT count(*) FROM ev), (SELECT count(*) FROM ky)"
        ).format(**names),
        "append": sql.SQL(
            "SELECT req, notification_id FROM ceiling_append(%s::int[], %b::uuid[], "
            "%b::bigint[], %b::text[], %b::bytea[], %s::int[], %b::text[], %b::bytea[])"
        ),
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
        linked = chain_rows(events, ids, head)
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

    def __init__(self, dbname: str, one_trip: bool = False) -> None:
        self._queue: queue.SimpleQueue[Rows | None] = queue.SimpleQueue()
        self._dbname = dbname
        self._write = write_one_trip if one_trip else write_locked
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
                    self._write(conn, batch, st)
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
    """Events and key only, no table lock, each report one statement in autocommit (one
    round trip, atomic): a collision fails on the primary key and writes nothing."""

    @contextmanager
    def open_worker() -> Iterator[Op]:
        st = statements()
        with psycopg.connect(conninfo(dbname), autocommit=True) as conn:

            def op(filing: Filing) -> Outcome:
                rows = report_rows(keyer, filing.project_id, filing.phone)
                try:
                    conn.execute(
                        st["unlocked"],
                        [*columns(rows.events), [rows.subject], [rows.wrapped]],
                        prepare=True,
                    )
                except psycopg.errors.UniqueViolation:
                    return ("rejected", "duplicate")
                return ("accepted", None)

            yield op

    return open_worker


# The whole batch in one server-side call, so the writer's transaction is one round trip
# (BEGIN, LOCK, this, COMMIT pipelined): the conflict check, the inserts, and the chain
# hashed in SQL with the same canonical encoding as ``yingke.chain.event_hash`` and
# ``log_hash`` (a test compares them). ``req`` numbers the reports of the batch; a report
# with any (stream, version) already stored, or claimed by an earlier report of the batch,
# is refused whole and comes back with a NULL position.
APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION ceiling_append(
    reqs int[], ids uuid[], vers bigint[], topics text[], states bytea[],
    key_reqs int[], subjects text[], wrapped bytea[])
RETURNS TABLE (req int, notification_id bigint) LANGUAGE plpgsql AS $fn$
DECLARE
    refused int[];
    n_ids bigint[]; n_streams uuid[]; n_vers bigint[]; n_topics text[]; n_states bytea[];
    prevs bytea[] := '{{}}'; owns bytea[] := '{{}}'; logs bytea[] := '{{}}';
    prev_log bytea;
    prev bytea;
    own bytea;
    topic bytea;
    j int;
BEGIN
    SELECT array_agg(DISTINCT k.req) INTO refused
    FROM unnest(reqs, ids, vers) AS k(req, id, v)
    WHERE EXISTS (SELECT 1 FROM {events} e WHERE e.originator_id = k.id
                  AND e.originator_version = k.v)
       OR EXISTS (SELECT 1 FROM unnest(reqs, ids, vers) AS o(req, id, v)
                  WHERE o.id = k.id AND o.v = k.v AND o.req < k.req);
    refused := coalesce(refused, '{{}}');
    WITH ins AS (
        INSERT INTO {events} (originator_id, originator_version, topic, state)
        SELECT k.id, k.v, k.t, k.s FROM unnest(reqs, ids, vers, topics, states)
            WITH ORDINALITY AS k(req, id, v, t, s, n)
        WHERE k.req <> ALL(refused) ORDER BY k.n
        RETURNING {events}.notification_id AS p, {events}.originator_id AS i,
                  {events}.originator_version AS v, {events}.topic AS t, {events}.state AS s)
    SELECT array_agg(p ORDER BY p), array_agg(i ORDER BY p), array_agg(v ORDER BY p),
           array_agg(t ORDER BY p), array_agg(s ORDER BY p)
    INTO n_ids, n_streams, n_vers, n_topics, n_states FROM ins;
    SELECT c.log_hash INTO prev_log FROM {chain} c ORDER BY c.position DESC LIMIT 1;
    prev_log := coalesce(prev_log, '\\x{genesis}'::bytea);
    FOR n IN 1 .. coalesce(array_length(n_ids, 1), 0) LOOP
        prev := NULL;
        IF n_vers[n] = 1 THEN
            prev := '\\x{genesis}'::bytea;
        ELSE
            FOR j IN REVERSE n - 1 .. 1 LOOP
                IF n_streams[j] = n_streams[n] AND n_vers[j] = n_vers[n] - 1 THEN
                    prev := owns[j];
                    EXIT;
                END IF;
            END LOOP;
            IF prev IS NULL THEN
                SELECT c.hash INTO prev FROM {chain} c
                WHERE c.originator_id = n_streams[n] AND c.originator_version = n_vers[n] - 1;
            END IF;
        END IF;
        topic := convert_to(n_topics[n], 'UTF8');
        own := sha256('yingke-event-v1'::bytea || int8send(16) || uuid_send(n_streams[n])
            || int8send(n_vers[n]) || int8send(n_ids[n])
            || int8send(octet_length(topic)) || topic
            || int8send(octet_length(n_states[n])) || n_states[n]
            || int8send(octet_length(prev)) || prev);
        prev_log := sha256('yingke-log-v1'::bytea || prev_log || int8send(n_ids[n]) || own);
        prevs := prevs || prev; owns := owns || own; logs := logs || prev_log;
    END LOOP;
    INSERT INTO {chain}
    SELECT * FROM unnest(n_streams, n_vers, n_ids, prevs, owns, logs);
    INSERT INTO {keys} (subject, wrapped)
    SELECT k.s, k.w FROM unnest(key_reqs, subjects, wrapped) AS k(req, s, w)
    WHERE k.req <> ALL(refused) ON CONFLICT DO NOTHING;
    RETURN QUERY
        SELECT k.req, n.p FROM unnest(reqs, ids, vers) AS k(req, id, v)
        LEFT JOIN unnest(n_ids, n_streams, n_vers) AS n(p, i, v)
        ON n.i = k.id AND n.v = k.v;
END
$fn$
"""


def install_append_function(conn: psycopg.Connection[Any]) -> None:
    ddl = APPEND_FUNCTION.format(
        events=EVENTS_TABLE, chain=CHAIN_TABLE, keys=KEYS_TABLE, genesis=GENESIS.hex()
    )
    conn.execute(ddl.encode())  # bytes: no placeholders in a function body
    conn.commit()


def write_one_trip(
    conn: psycopg.Connection[Any], batch: Sequence[Rows], st: dict[str, Any]
) -> None:
    """``write_locked`` in one round trip: BEGIN, LOCK, the call and COMMIT pipelined,
    the check, inserts and chain decided in SQL."""
    events = [(n, *e) for n, r in enumerate(batch) for e in r.events]
    with conn.cursor() as control, conn.cursor() as call:
        with conn.pipeline():
            control.execute(b"BEGIN")
            control.execute(st["lock"])
            call.execute(
                st["append"],
                (
                    [e[0] for e in events],
                    [e[1] for e in events],
                    [e[2] for e in events],
                    [e[3] for e in events],
                    [e[4] for e in events],
                    list(range(len(batch))),
                    [r.subject for r in batch],
                    [r.wrapped for r in batch],
                ),
                prepare=True,
            )
            control.execute(b"COMMIT")
        found = call.fetchall()
    positions: dict[int, list[int | None]] = {}
    for req, position in found:
        positions.setdefault(int(req), []).append(position)
    for n, rows in enumerate(batch):
        got = positions.get(n, [])
        if any(p is None for p in got):
            rows.refused = True
        else:
            rows.ids = [int(p) for p in got if p is not None]


SCENARIOS = (
    "baseline",
    "rows, own txn",
    "rows, group commit",
    "rows, group commit, one trip",
    "rows, no lock, no chain",
)


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
        with psycopg.connect(conninfo(dbname)) as conn:
            install_append_function(conn)
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
                elif scenario.startswith("rows, group commit"):
                    writer = GroupWriter(dbname, one_trip=scenario.endswith("one trip"))
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
