"""A tamper-evident event store: a SHA-256 chain per stream and over the whole log.

Every stored event gets a row in ``yingke_event_chain`` written in the same transaction
as the event, inside the recorder's insert path (so a later group-commit layer that
appends many aggregates at once chains them too):

- ``hash`` = SHA-256 over a canonical encoding of (stream, version, position, topic,
  state) and the previous event's ``hash`` in the same stream (``prev_hash``; zeros for
  version 1): editing or removing an event breaks its stream's chain.
- ``log_hash`` = SHA-256 over the previous ``log_hash`` of the notification log, the
  position and ``hash``: removing or reordering whole events breaks it.
- Every N events or M seconds a checkpoint signs (position, log_hash) with the
  service's Ed25519 key, so a rewrite that recomputes every hash is still caught
  wherever a checkpoint covers it (ADR 0035).

Loading a stream (``select_events``) checks its chain and raises ``ChainBroken``
rather than serving a forged history as truth.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol, cast

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from yingke import pgarrays
from yingke.group_commit import Batch, GroupWriter, partition, refuse
from yingke.vault import TABLE as KEYS_TABLE
from yingke.vault import NewKey

GENESIS = b"\x00" * 32
CHAIN_TABLE = "yingke_event_chain"
CHECKPOINT_TABLE = "yingke_checkpoints"
# Snapshots of long streams, sealed and bound to this chain (yingke.snapshots, ADR 0060).
SNAPSHOT_TABLE = "yingke_snapshots"
SQLITE_TOPIC = "yingke.chain:ChainedSQLiteRecorder"
POSTGRES_TOPIC = "yingke.chain:ChainedPostgresRecorder"

_failures_lock = threading.Lock()
_failures = 0


def integrity_failures() -> int:
    """How many broken chains this process has met (exported as a metric)."""
    return _failures


def _count_failure() -> None:
    global _failures
    with _failures_lock:
        _failures += 1


class ChainBroken(Exception):
    """A stored event no longer matches the chain written with it."""

    def __init__(self, stream: str, version: int | None, position: int | None, reason: str):
        self.stream = stream
        self.version = version
        self.position = position
        self.reason = reason
        super().__init__(f"stream {stream} version {version} position {position}: {reason}")


_LEN = struct.Struct(">Q")
_PAIR = struct.Struct(">QQ")


def event_hash(
    stream: uuid.UUID, version: int, position: int, topic: str, state: bytes, prev: bytes
) -> bytes:
    return _event_hash(stream.bytes, version, position, topic, state, prev)


def _event_hash(
    stream: bytes, version: int, position: int, topic: str, state: bytes, prev: bytes
) -> bytes:
    """The canonical encoding: a domain tag, then length-prefixed fields in fixed order."""
    encoded_topic = topic.encode()
    digest = hashlib.sha256(b"yingke-event-v1")
    digest.update(_LEN.pack(len(stream)) + stream + _PAIR.pack(version, position))
    digest.update(_LEN.pack(len(encoded_topic)) + encoded_topic + _LEN.pack(len(state)))
    digest.update(state)
    digest.update(_LEN.pack(len(prev)) + prev)
    return digest.digest()


def log_hash(prev_log: bytes, position: int, ev_hash: bytes) -> bytes:
    return hashlib.sha256(
        b"yingke-log-v1" + prev_log + struct.pack(">Q", position) + ev_hash
    ).digest()


def checkpoint_message(position: int, log_head: bytes) -> bytes:
    return b"yingke-checkpoint-v1" + struct.pack(">Q", position) + log_head


class Signer(Protocol):
    def sign_checkpoint(self, message: bytes) -> tuple[str, bytes]: ...

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool: ...


@dataclass(frozen=True)
class ChainRow:
    stream: uuid.UUID
    version: int
    position: int
    prev_hash: bytes
    hash: bytes
    log_hash: bytes


@dataclass(frozen=True)
class Checkpoint:
    position: int
    log_hash: bytes
    signed_at: float
    key_id: str
    signature: bytes


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


class _Ops(Protocol):
    """What the chain needs from one backend inside the append transaction."""

    def prev_hashes(
        self, keys: list[tuple[uuid.UUID, int]]
    ) -> dict[tuple[uuid.UUID, int], bytes]: ...

    def log_head(self) -> tuple[int, bytes] | None: ...

    def insert_rows(self, rows: list[ChainRow]) -> None: ...

    def last_checkpoint(self) -> tuple[int, float] | None: ...

    def insert_checkpoint(self, cp: Checkpoint) -> None: ...


class Chained:
    """The chain logic shared by the SQLite and PostgreSQL recorders."""

    signer: Signer | None = None
    checkpoint_every: int = 1000
    checkpoint_seconds: float = 60.0
    # Called (without arguments) in the saving thread once its save committed: wakes this
    # process's view follower (yingke/wake.py).
    on_commit: Callable[[], None] | None = None

    def configure(self, signer: Signer | None, every: int, seconds: float) -> None:
        self.signer = signer
        self.checkpoint_every = every
        self.checkpoint_seconds = seconds

    def _thread_state(self) -> threading.local:
        state: threading.local | None = self.__dict__.get("_chain_thread_state")
        if state is None:
            fresh = threading.local()
            # setdefault is atomic: two threads racing here share one.
            state = cast(threading.local, self.__dict__.setdefault("_chain_thread_state", fresh))
        return state

    def written_hash(self, stream: uuid.UUID, version: int) -> bytes | None:
        """The chain hash of an event the calling thread's last committed save wrote.

        A report's receipt signs the hash of the event that decided it; the save has
        just computed it under the lock and committed it, so reading it back (and the
        streams that locate it) is not needed (ADR 0061). None if that save did not
        write the event (the caller then reads it from the chain table).
        """
        written: dict[tuple[uuid.UUID, int], bytes] | None = getattr(
            self._thread_state(), "written", None
        )
        return None if written is None else written.get((stream, version))

    def _begin_save(self) -> None:
        state = self._thread_state()
        state.pending = None
        state.written = None

    def _committed(self, rows: Sequence[ChainRow] | None) -> None:
        """Called in the saving thread once its transaction committed."""
        state = self._thread_state()
        state.pending = None
        state.written = {(r.stream, r.version): r.hash for r in rows} if rows else None
        if self.on_commit is not None:
            self.on_commit()

    def _append_chain(
        self, ops: _Ops, stored: Sequence[StoredEvent], positions: Sequence[int]
    ) -> list[ChainRow]:
        # Each event's stream as a UUID once (the batch's events arrive as StoredEvents).
        streams = [_uuid(s.originator_id) for s in stored]
        pairs = list(zip(streams, stored, strict=True))
        in_batch = {(stream, s.originator_version) for stream, s in pairs}
        wanted = [
            (stream, s.originator_version - 1)
            for stream, s in pairs
            if s.originator_version > 1 and (stream, s.originator_version - 1) not in in_batch
        ]
        known = ops.prev_hashes(wanted) if wanted else {}
        head = ops.log_head()
        prev_position, prev_log = head if head is not None else (0, GENESIS)
        rows: list[ChainRow] = []
        for position, stream, s in sorted(
            zip(positions, streams, stored, strict=True), key=lambda p: p[0]
        ):
            if s.originator_version == 1:
                prev = GENESIS
            else:
                found = known.get((stream, s.originator_version - 1))
                if found is None:
                    raise ChainBroken(
                        str(stream),
                        s.originator_version,
                        position,
                        "previous event has no chain entry (run `yingke migrate`)",
                    )
                prev = found
            own = event_hash(stream, s.originator_version, position, s.topic, s.state, prev)
            prev_log = log_hash(prev_log, position, own)
            rows.append(ChainRow(stream, s.originator_version, position, prev, own, prev_log))
            known[(stream, s.originator_version)] = own
        ops.insert_rows(rows)
        # For a save in the calling thread (SQLite, or PostgreSQL without group commit):
        # published by ``insert_events`` only after the commit.
        self._thread_state().pending = rows
        if rows and self.signer is not None:
            self._maybe_checkpoint(ops, prev_position, rows[-1])
        return rows

    def _maybe_checkpoint(self, ops: _Ops, before: int, last: ChainRow) -> None:
        assert self.signer is not None
        previous = ops.last_checkpoint()
        now = time.time()
        crossed = last.position // self.checkpoint_every > before // self.checkpoint_every
        stale = previous is None or now - previous[1] >= self.checkpoint_seconds
        if crossed or stale:
            key_id, signature = self.signer.sign_checkpoint(
                checkpoint_message(last.position, last.log_hash)
            )
            ops.insert_checkpoint(Checkpoint(last.position, last.log_hash, now, key_id, signature))

    @staticmethod
    def _check_stream(
        stream: uuid.UUID,
        events: list[tuple[int, StoredEvent]],
        chain: dict[int, tuple[int, bytes, bytes]],
        complete_tail: bool,
        lowest: int | None,
    ) -> None:
        """``events``: (position, event) ascending; ``chain``: version → (position, prev, hash)."""
        name = str(stream)
        seen = set()
        previous: tuple[int, bytes] | None = None
        for position, event in events:
            version = event.originator_version
            seen.add(version)
            row = chain.get(version)
            if row is None:
                raise ChainBroken(name, version, position, "event has no chain entry")
            chain_position, prev, own = row
            if chain_position != position:
                raise ChainBroken(
                    name, version, position, f"event moved (chained at position {chain_position})"
                )
            if event_hash(stream, version, position, event.topic, event.state, prev) != own:
                raise ChainBroken(name, version, position, "event content does not match its hash")
            if version == 1:
                expected: bytes | None = GENESIS
            elif previous is not None and previous[0] == version - 1:
                expected = previous[1]
            elif version - 1 in chain:
                expected = chain[version - 1][2]
            else:
                expected = None
            if expected is None or prev != expected:
                raise ChainBroken(name, version, position, "link to the previous event is broken")
            previous = (version, own)
        if events:
            low = lowest if lowest is not None else events[0][1].originator_version
            high = events[-1][1].originator_version
            for version, (position, _, _) in sorted(chain.items()):
                beyond = version > high and complete_tail
                if (low <= version <= high or beyond) and version not in seen:
                    raise ChainBroken(name, version, position, "chained event is missing")
        elif complete_tail:
            floor = (lowest - 1) if lowest is not None else 0
            for version, (position, _, _) in sorted(chain.items()):
                if version > floor:
                    raise ChainBroken(name, version, position, "chained event is missing")

    def _verified(
        self,
        stream: uuid.UUID,
        rows: list[tuple[int, StoredEvent]],
        chain: dict[int, tuple[int, bytes, bytes]],
        *,
        gt: int | None,
        lte: int | None,
        desc: bool,
        limit: int | None,
    ) -> list[StoredEvent]:
        ascending = sorted(rows, key=lambda r: r[1].originator_version)
        try:
            self._check_stream(
                stream,
                ascending,
                chain,
                complete_tail=limit is None,
                lowest=(gt + 1) if gt is not None and limit is None else None,
            )
        except ChainBroken:
            _count_failure()
            raise
        events = [e for _, e in ascending]
        return list(reversed(events)) if desc else events

    def _heads(
        self,
        events: list[tuple[str, int, int, str, bytes]],
        chains: list[tuple[str, int, int, bytes, bytes]],
        upto: int,
    ) -> dict[uuid.UUID, list[StoredEvent]]:
        """Group (stream, position, version, topic, state) rows and (stream, version,
        position, prev, hash) chain rows by stream, and check each as ``select_events``."""
        rows: dict[str, list[tuple[int, StoredEvent]]] = {}
        chain: dict[str, dict[int, tuple[int, bytes, bytes]]] = {}
        for stream, position, version, topic, state in events:
            stored = StoredEvent(
                originator_id=_uuid(stream), originator_version=version, topic=topic, state=state
            )
            rows.setdefault(stream, []).append((position, stored))
        for stream, version, position, prev, own in chains:
            chain.setdefault(stream, {})[version] = (position, prev, own)
        found = {}
        for stream in rows.keys() | chain.keys():
            key = _uuid(stream)
            found[key] = self._verified(
                key,
                rows.get(stream, []),
                chain.get(stream, {}),
                gt=None,
                lte=upto,
                desc=False,
                limit=None,
            )
        return found


def _select_bounds(
    gt: int | None, lte: int | None, desc: bool, limit: int | None, placeholder: str
) -> tuple[str, list[Any]]:
    sql = ""
    params: list[Any] = []
    if gt is not None:
        sql += f" AND originator_version > {placeholder}"
        params.append(gt)
    if lte is not None:
        sql += f" AND originator_version <= {placeholder}"
        params.append(lte)
    sql += " ORDER BY originator_version " + ("DESC" if desc else "ASC")
    if limit is not None:
        sql += f" LIMIT {placeholder}"
        params.append(limit)
    return sql, params


# ---------------------------------------------------------------------- SQLite


class _SQLiteOps:
    def __init__(self, c: SQLiteCursor) -> None:
        self.c = c

    def prev_hashes(self, keys: list[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], bytes]:
        out = {}
        for stream, version in keys:
            self.c.execute(
                f"SELECT hash FROM {CHAIN_TABLE} WHERE originator_id=? AND originator_version=?",
                (stream.hex, version),
            )
            row = self.c.fetchone()
            if row is not None:
                out[(stream, version)] = bytes(row[0])
        return out

    def log_head(self) -> tuple[int, bytes] | None:
        self.c.execute(
            f"SELECT position, log_hash FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1"
        )
        row = self.c.fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def insert_rows(self, rows: list[ChainRow]) -> None:
        self.c.executemany(
            f"INSERT INTO {CHAIN_TABLE} VALUES (?,?,?,?,?,?)",
            [(r.stream.hex, r.version, r.position, r.prev_hash, r.hash, r.log_hash) for r in rows],
        )

    def last_checkpoint(self) -> tuple[int, float] | None:
        self.c.execute(
            f"SELECT position, signed_at FROM {CHECKPOINT_TABLE} ORDER BY position DESC LIMIT 1"
        )
        row = self.c.fetchone()
        return (int(row[0]), float(row[1])) if row else None

    def insert_checkpoint(self, cp: Checkpoint) -> None:
        self.c.execute(
            f"INSERT OR IGNORE INTO {CHECKPOINT_TABLE} VALUES (?,?,?,?,?)",
            (cp.position, cp.log_hash, cp.signed_at, cp.key_id, cp.signature),
        )


SQLITE_DDL = [
    f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (originator_id TEXT NOT NULL, "
    "originator_version INTEGER NOT NULL, position INTEGER NOT NULL, prev_hash BLOB NOT NULL, "
    "hash BLOB NOT NULL, log_hash BLOB NOT NULL, "
    "PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID",
    f"CREATE UNIQUE INDEX IF NOT EXISTS {CHAIN_TABLE}_position ON {CHAIN_TABLE} (position)",
    f"CREATE INDEX IF NOT EXISTS {CHAIN_TABLE}_hash ON {CHAIN_TABLE} (hash)",
    f"CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (position INTEGER PRIMARY KEY, "
    "log_hash BLOB NOT NULL, signed_at REAL NOT NULL, key_id TEXT NOT NULL, "
    "signature BLOB NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {SNAPSHOT_TABLE} (originator_id TEXT NOT NULL, "
    "originator_version INTEGER NOT NULL, last_at INTEGER NOT NULL, head_hash BLOB NOT NULL, "
    "code TEXT NOT NULL, state BLOB NOT NULL, mac BLOB NOT NULL, "
    "PRIMARY KEY (originator_id, code, originator_version)) WITHOUT ROWID",
]


class ChainedSQLiteRecorder(Chained, SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *SQLITE_DDL]

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._begin_save()
        ids = super().insert_events(stored_events, **kwargs)
        self._committed(getattr(self._thread_state(), "pending", None))
        return ids

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._insert_events(c, stored_events, **kwargs)
        assert positions is not None
        # The write lock is held from the first INSERT: the log head read here is final.
        self._append_chain(_SQLiteOps(c), stored_events, [int(p) for p in positions])
        return positions

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        stream = _uuid(originator_id)
        bounds, params = _select_bounds(gt, lte, desc, limit, "?")
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, originator_version, topic, state FROM {self.events_table_name} "
                f"WHERE originator_id=?{bounds}",
                [stream.hex, *params],
            )
            rows = [
                (
                    int(r[0]),
                    StoredEvent(
                        originator_id=stream,
                        originator_version=int(r[1]),
                        topic=r[2],
                        state=bytes(r[3]),
                    ),
                )
                for r in c.fetchall()
            ]
            low = min((e.originator_version for _, e in rows), default=(gt or 0) + 1) - 1
            c.execute(
                f"SELECT originator_version, position, prev_hash, hash FROM {CHAIN_TABLE} "
                "WHERE originator_id=? AND originator_version>=?",
                (stream.hex, low),
            )
            chain = {int(r[0]): (int(r[1]), bytes(r[2]), bytes(r[3])) for r in c.fetchall()}
        if lte is not None:
            chain = {v: row for v, row in chain.items() if v <= lte}
        return self._verified(stream, rows, chain, gt=gt, lte=lte, desc=desc, limit=limit)

    def select_heads(
        self, ids: Sequence[uuid.UUID], upto: int
    ) -> dict[uuid.UUID, list[StoredEvent]]:
        """The first ``upto`` events of many streams, each chain checked as on any load;
        streams without events are left out. Two queries per 400 ids (SQLite allows 999
        parameters per statement) instead of two per stream."""
        found: dict[uuid.UUID, list[StoredEvent]] = {}
        for start in range(0, len(ids), 400):
            part = [i.hex for i in ids[start : start + 400]]
            marks = ", ".join("?" * len(part))
            with self.datastore.transaction(commit=False) as c:
                c.execute(
                    "SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {self.events_table_name} WHERE originator_id IN ({marks}) "
                    "AND originator_version <= ?",
                    [*part, upto],
                )
                events = [
                    (str(r[1]), int(r[0]), int(r[2]), str(r[3]), bytes(r[4])) for r in c.fetchall()
                ]
                c.execute(
                    "SELECT originator_id, originator_version, position, prev_hash, hash "
                    f"FROM {CHAIN_TABLE} WHERE originator_id IN ({marks}) "
                    "AND originator_version <= ?",
                    [*part, upto],
                )
                chains = [
                    (str(r[0]), int(r[1]), int(r[2]), bytes(r[3]), bytes(r[4]))
                    for r in c.fetchall()
                ]
            found.update(self._heads(events, chains, upto))
        return found

    def select_streams_with(self, ids: Sequence[uuid.UUID], topic: str) -> set[uuid.UUID]:
        """Which of ``ids`` hold an event of ``topic``: one query per 900 ids. A presence
        test (the import asks which buyers were erased), not a load: nothing is decoded."""
        found: set[uuid.UUID] = set()
        for start in range(0, len(ids), 900):
            part = [i.hex for i in ids[start : start + 900]]
            marks = ", ".join("?" * len(part))
            with self.datastore.transaction(commit=False) as c:
                c.execute(
                    f"SELECT DISTINCT originator_id FROM {self.events_table_name} "
                    f"WHERE originator_id IN ({marks}) AND topic = ?",
                    [*part, topic],
                )
                found.update(_uuid(r[0]) for r in c.fetchall())
        return found


# ------------------------------------------------------------------ PostgreSQL

_REPEATABLE_READ = SQL("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
_BEGIN = b"BEGIN"
_COMMIT = b"COMMIT"


class _Statement:
    """A statement rendered to bytes once, on first use, with that connection's quoting.

    psycopg renders a ``Composed`` again on every execute (walking its parts, quoting
    each identifier): several per cent of the process's CPU for statements that never
    change (issue 15). Bytes go straight to psycopg's cache of parsed queries.
    """

    __slots__ = ("_composed", "_rendered")

    def __init__(self, composed: Composable | str | bytes | Any) -> None:
        if not isinstance(composed, Composable | str | bytes):
            raise TypeError(f"cannot render {type(composed).__name__} once")
        self._composed = composed
        self._rendered: bytes | None = None

    def on(self, context: Any) -> bytes:
        """``context``: a connection or cursor of the database the statement is for."""
        rendered = self._rendered
        if rendered is None:
            # The arrays in yingke.pgarrays encode text as UTF-8.
            encoding = context.connection.info.encoding
            if encoding != "utf-8":
                raise RuntimeError(f"the event store needs a UTF-8 connection, not {encoding}")
            query = self._composed
            if isinstance(query, Composable):
                rendered = query.as_bytes(context)
            else:
                rendered = query.encode() if isinstance(query, str) else query
            self._rendered = rendered
        return rendered


class _ChainStatements:
    """The chain table's statements for one schema, each rendered once."""

    def __init__(self, schema: str) -> None:
        chain = Identifier(schema, CHAIN_TABLE)
        checkpoints = Identifier(schema, CHECKPOINT_TABLE)
        self.prev_hashes = _Statement(
            SQL(
                "SELECT c.originator_id, c.originator_version, c.hash FROM {} c "
                "JOIN unnest(%b::uuid[], %b::bigint[]) AS k(id, v) "
                "ON c.originator_id = k.id AND c.originator_version = k.v"
            ).format(chain)
        )
        self.log_head = _Statement(
            SQL("SELECT position, log_hash FROM {} ORDER BY position DESC LIMIT 1").format(chain)
        )
        # One statement for the whole batch: a group commit of thousands of events stays
        # one round trip (and executemany results confuse the pipeline's next fetch).
        # Binary parameters: text-format bytea arrays cost more than hashing the events.
        self.insert_rows = _Statement(
            SQL(
                "INSERT INTO {} SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::bigint[], "
                "%b::bytea[], %b::bytea[], %b::bytea[])"
            ).format(chain)
        )
        self.last_checkpoint = _Statement(
            SQL("SELECT position, signed_at FROM {} ORDER BY position DESC LIMIT 1").format(
                checkpoints
            )
        )
        self.insert_checkpoint = _Statement(
            SQL(
                "INSERT INTO {} VALUES (%s, %s, %s, %s, %s) ON CONFLICT (position) DO NOTHING"
            ).format(checkpoints)
        )


_chain_statements: dict[str, _ChainStatements] = {}


def _statements_for(schema: str) -> _ChainStatements:
    found = _chain_statements.get(schema)
    if found is None:
        # setdefault: two threads racing here share one.
        found = _chain_statements.setdefault(schema, _ChainStatements(schema))
    return found


class _PostgresOps:
    def __init__(self, curs: Cursor[Any], schema: str) -> None:
        self.curs = curs
        self.sql = _statements_for(schema)

    def prev_hashes(self, keys: list[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], bytes]:
        curs = self.curs
        curs.execute(
            self.sql.prev_hashes.on(curs),
            (pgarrays.uuids([k[0] for k in keys]), pgarrays.int8s([k[1] for k in keys])),
        )
        # The cursor's row factory may be the library's dict_row or tuple_row: read both.
        return {(_uuid(r[0]), int(r[1])): bytes(r[2]) for r in map(_values, curs.fetchall())}

    def _one(self, statement: Any) -> tuple[Any, ...] | None:
        """The first row of a parameterless statement, as values in column order."""
        curs = self.curs
        curs.execute(statement.on(curs))
        row = curs.fetchone()
        return None if row is None else _values(row)

    def log_head(self) -> tuple[int, bytes] | None:
        row = self._one(self.sql.log_head)
        if row is None:
            return None
        position, digest = row
        return int(position), bytes(digest)

    def insert_rows(self, rows: list[ChainRow]) -> None:
        curs = self.curs
        curs.execute(
            self.sql.insert_rows.on(curs),
            (
                pgarrays.uuids([r.stream for r in rows]),
                pgarrays.int8s([r.version for r in rows]),
                pgarrays.int8s([r.position for r in rows]),
                pgarrays.byteas([r.prev_hash for r in rows]),
                pgarrays.byteas([r.hash for r in rows]),
                pgarrays.byteas([r.log_hash for r in rows]),
            ),
        )

    def last_checkpoint(self) -> tuple[int, float] | None:
        row = self._one(self.sql.last_checkpoint)
        if row is None:
            return None
        position, signed_at = row
        return int(position), float(signed_at)

    def insert_checkpoint(self, cp: Checkpoint) -> None:
        curs = self.curs
        curs.execute(
            self.sql.insert_checkpoint.on(curs),
            (cp.position, cp.log_hash, cp.signed_at, cp.key_id, cp.signature),
        )


def _values(row: Any) -> tuple[Any, ...]:
    """A row's values in column order, whether the cursor makes tuples or dicts."""
    return row if isinstance(row, tuple) else tuple(row.values())


class _PrefetchedOps:
    """The chain's reads answered from one statement sent with the batch's conflict
    check (``ChainedPostgresRecorder._write_batch``); its rows are kept for the batch's
    insert, a checkpoint goes to ``ops``.

    Under the table lock nobody else appends, so what that statement read stays true
    until the batch commits: the chain's reads cost no round trips of their own.
    """

    rows: list[ChainRow] | None = None

    def __init__(
        self,
        ops: _PostgresOps,
        known: dict[tuple[uuid.UUID, int], bytes],
        head: tuple[int, bytes] | None,
        checkpoint: tuple[int, float] | None,
    ) -> None:
        self._ops, self._known, self._head, self._checkpoint = ops, known, head, checkpoint

    def prev_hashes(self, keys: list[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], bytes]:
        return {k: self._known[k] for k in keys if k in self._known}

    def log_head(self) -> tuple[int, bytes] | None:
        return self._head

    def insert_rows(self, rows: list[ChainRow]) -> None:
        # Sent with the events, in the batch's one insert statement.
        self.rows = rows

    def last_checkpoint(self) -> tuple[int, float] | None:
        return self._checkpoint

    def insert_checkpoint(self, cp: Checkpoint) -> None:
        self._ops.insert_checkpoint(cp)


class KeySource(Protocol):
    """The vault, as the recorder sees it when new subject keys ride with the events."""

    def take_new_keys(self) -> list[NewKey]: ...

    def keys_stored(self, keys: Sequence[NewKey]) -> None: ...

    def keys_refused(self, keys: Sequence[NewKey]) -> None: ...

    def store_new_keys(self, keys: Sequence[NewKey]) -> bool: ...


def postgres_ddl(schema: str) -> list[Composed]:
    chain = Identifier(schema, CHAIN_TABLE)
    return [
        SQL(
            "CREATE TABLE IF NOT EXISTS {} (originator_id uuid NOT NULL, "
            "originator_version bigint NOT NULL, position bigint NOT NULL, "
            "prev_hash bytea NOT NULL, hash bytea NOT NULL, log_hash bytea NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version))"
        ).format(chain),
        SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (position)").format(
            Identifier(f"{CHAIN_TABLE}_position"), chain
        ),
        SQL("CREATE INDEX IF NOT EXISTS {} ON {} (hash)").format(
            Identifier(f"{CHAIN_TABLE}_hash"), chain
        ),
        SQL(
            "CREATE TABLE IF NOT EXISTS {} (position bigint PRIMARY KEY, log_hash bytea NOT NULL, "
            "signed_at double precision NOT NULL, key_id text NOT NULL, signature bytea NOT NULL)"
        ).format(Identifier(schema, CHECKPOINT_TABLE)),
        SQL(
            "CREATE TABLE IF NOT EXISTS {} (originator_id uuid NOT NULL, "
            "originator_version bigint NOT NULL, last_at bigint NOT NULL, "
            "head_hash bytea NOT NULL, code text NOT NULL, state bytea NOT NULL, "
            "mac bytea NOT NULL, PRIMARY KEY (originator_id, code, originator_version))"
        ).format(Identifier(schema, SNAPSHOT_TABLE)),
    ]


class ChainedPostgresRecorder(Chained, PostgresApplicationRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(postgres_ddl(self.datastore.schema))
        table = Identifier(self.datastore.schema, self.events_table_name)
        # Everything a batch must read under the lock, in one statement (one round trip):
        # kind 0, the (stream, version) pairs of the batch already stored (conflicts);
        # kind 1, the chain hashes of the events just before the batch's; kind 2, the log
        # head; kind 3, the last checkpoint; kind 4, the subjects of the batch's new keys
        # that have a key already; kind 5, a notification id for each event of the batch,
        # taken from the table's own sequence under the lock (ids in the order taken are
        # the order of commit, as when the insert's default took them).
        self._taken_statement = _Statement(
            SQL(
                "SELECT 0 AS kind, e.originator_id AS id, e.originator_version AS v, "
                "NULL::bytea AS h, NULL::float8 AS t, NULL::text AS s FROM {events} e "
                "JOIN unnest(%b::uuid[], %b::bigint[]) AS k(id, v) "
                "ON e.originator_id = k.id AND e.originator_version = k.v "
                "UNION ALL "
                "SELECT 1, c.originator_id, c.originator_version, c.hash, NULL, NULL "
                "FROM {chain} c JOIN unnest(%b::uuid[], %b::bigint[]) AS k(id, v) "
                "ON c.originator_id = k.id AND c.originator_version = k.v "
                "UNION ALL "
                "(SELECT 2, NULL, position, log_hash, NULL, NULL FROM {chain} "
                "ORDER BY position DESC LIMIT 1) "
                "UNION ALL "
                "(SELECT 3, NULL, position, NULL, signed_at, NULL FROM {checkpoints} "
                "ORDER BY position DESC LIMIT 1) "
                "UNION ALL "
                "SELECT 4, NULL, NULL, NULL, NULL, subject FROM {keys} "
                "WHERE subject = ANY(%b::text[]) "
                "UNION ALL "
                "SELECT 5, NULL, nextval(q.seq), NULL, NULL, NULL FROM (SELECT "
                "pg_get_serial_sequence({events_name}, 'notification_id')::regclass AS seq) q, "
                "generate_series(1, %s::int8)"
            ).format(
                events=table,
                events_name=Literal(table.as_string(None)),
                chain=Identifier(self.datastore.schema, CHAIN_TABLE),
                checkpoints=Identifier(self.datastore.schema, CHECKPOINT_TABLE),
                # Unqualified, as the vault's key store names it (same database).
                keys=Identifier(KEYS_TABLE),
            )
        )
        # The batch's events, the subject keys they are sealed under and their chain rows
        # in one statement, sent with COMMIT (ADR 0071): the ids were taken by the read
        # above, so the chain needs nothing back from the insert. A subject that got a key
        # between that read and this insert (a key stored outside the writer: an import)
        # violates the key table's primary key and the batch fails whole, before COMMIT.
        # Binary arrays: quoting every state as text was a third of the insert (ADR 0047).
        self._insert_statement = _Statement(
            SQL(
                "WITH e AS (INSERT INTO {events} "
                "(notification_id, originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(%b::bigint[], %b::uuid[], %b::bigint[], %b::text[], "
                "%b::bytea[])), "
                "k AS (INSERT INTO {keys} (subject, wrapped) "
                "SELECT * FROM unnest(%b::text[], %b::bytea[])) "
                "INSERT INTO {chain} SELECT * FROM unnest(%b::uuid[], %b::bigint[], "
                "%b::bigint[], %b::bytea[], %b::bytea[], %b::bytea[])"
            ).format(
                events=table,
                keys=Identifier(KEYS_TABLE),
                chain=Identifier(self.datastore.schema, CHAIN_TABLE),
            )
        )
        self._lock_statements = [_Statement(q) for q in self.lock_table_statements]
        notify = SQL("NOTIFY {}").format(Identifier(self.channel_name))
        self._notify_statement = _Statement(notify)
        # The library's lock statements and the notification, as one statement for the
        # batch: each statement sent costs the writer ~30 µs of Python in psycopg, and
        # these three only ever follow each other. A DO block runs in the transaction
        # that BEGIN opened, so SET LOCAL, the lock and the NOTIFY mean what they did.
        parts: list[Composable] = [SQL("DO $yingke$BEGIN ")]
        for statement in [*self.lock_table_statements, notify]:
            if isinstance(statement, bytes):
                statement = statement.decode()
            if isinstance(statement, str):
                statement = SQL(statement)
            if not isinstance(statement, Composable):
                raise TypeError(f"cannot put {type(statement).__name__} in a DO block")
            parts += [statement, SQL("; ")]
        self._lock_and_notify = _Statement(Composed([*parts, SQL("END$yingke$")]))
        # select_events' statement for each combination of bounds given.
        self._select_statements: dict[tuple[bool, bool, bool, bool], _Statement] = {}
        self._watched_statement = _Statement(
            SQL(
                "WITH head AS (SELECT COALESCE(MAX(notification_id), 0) AS h FROM {t}) "
                "SELECT 0 AS kind, h AS id, NULL::uuid AS stream FROM head "
                "UNION ALL "
                "(SELECT 1, e.notification_id, e.originator_id FROM {t} e, head "
                "WHERE e.notification_id > %s AND e.notification_id <= head.h "
                "AND e.topic = ANY(%b) ORDER BY e.notification_id LIMIT %s)"
            ).format(t=table)
        )
        self.writer = GroupWriter(self._write_batch)
        # The vault, when a unit of work's new subject keys are stored with its events.
        self.new_keys: KeySource | None = None
        self._insert_columns = _Statement(
            SQL(
                "INSERT INTO {} (originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(%b::{}[], %b::bigint[], %b::text[], %b::bytea[]) "
                "RETURNING notification_id"
            ).format(
                Identifier(self.datastore.schema, self.events_table_name),
                Identifier(self.datastore.originator_id_type),
            )
        )

    def _lock_table(self, curs: Cursor[Any]) -> None:
        # The library's statements, rendered once (it renders them on every append).
        for statement in self._lock_statements:
            curs.execute(statement.on(curs), prepare=True)

    def _notify_channel(self, curs: Cursor[Any]) -> None:
        curs.execute(self._notify_statement.on(curs))

    # False: each save appends in its own transaction, as eventsourcing does (kept so the
    # benchmark can compare both in one run).
    group_commit = True

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append through the process's group-commit writer (ADR 0054)."""
        self._begin_save()
        if not stored_events:
            return []
        source = self.new_keys
        keys = source.take_new_keys() if source is not None else []
        if not self.group_commit:
            # Only the benchmark's baseline comes here: keys first, in their own commit.
            if source is not None and keys and not source.store_new_keys(keys):
                raise IntegrityError("a subject key was stored by another command first")
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            self._committed(getattr(self._thread_state(), "pending", None))
            return ids
        try:
            request = self.writer.submit_request(stored_events, keys)
        except IntegrityError:
            if source is not None and keys:
                source.keys_refused(keys)
            raise
        assert request.ids is not None and request.hashes is not None
        if source is not None and keys:
            source.keys_stored(keys)
        self._committed(
            [
                ChainRow(_uuid(e.originator_id), e.originator_version, i, b"", h, b"")
                for e, i, h in zip(request.events, request.ids, request.hashes, strict=True)
            ]
        )
        return request.ids

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """The library's insert, with one binary array per column instead of an array of
        a composite type in text format: quoting every state as text was a third of an
        import's time (ADR 0047). Same lock, notification and RETURNING order."""
        self._lock_table(curs)
        self._notify_channel(curs)
        uuid_ids = self.datastore.originator_id_type == "uuid"
        curs.execute(
            self._insert_columns.on(curs),
            (
                pgarrays.uuids([_uuid(s.originator_id) for s in stored_events])
                if uuid_ids
                else pgarrays.texts([str(s.originator_id) for s in stored_events]),
                pgarrays.int8s([s.originator_version for s in stored_events]),
                pgarrays.texts([s.topic for s in stored_events]),
                pgarrays.byteas([s.state for s in stored_events]),
            ),
        )

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        assert ids is not None
        # Still inside the transaction that holds the EXCLUSIVE lock on the events table,
        # so no other appender can move the log head between this read and the commit.
        self._append_chain(_PostgresOps(curs, self.datastore.schema), stored_events, ids)
        return ids

    def watched_since(
        self, start: int, topics: Sequence[str], limit: int
    ) -> tuple[int, list[tuple[int, uuid.UUID]]]:
        """The log head, and the first ``limit`` events of ``topics`` after ``start`` up
        to it: (position, stream) ascending. One statement, so one snapshot and one round
        trip for what ``max_notification_id`` and ``select_notifications`` read in two
        (``domain.services.watched`` calls it before every authenticated request)."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(
                self._watched_statement.on(conn),
                (start, pgarrays.texts(topics), limit),
                prepare=True,
            )
            rows = curs.fetchall()
        head = next(r[1] for r in rows if r[0] == 0)
        found = sorted((r[1], r[2]) for r in rows if r[0] == 1)
        return head, found

    def close_writer(self) -> None:
        self.writer.close()

    def _write_batch(self, batch: Batch) -> None:
        """One transaction for every request in ``batch``; refused ones get IntegrityError."""
        with self.datastore.get_connection() as conn:
            try:
                written = self._write_batch_on(conn, batch)
            except BaseException:
                # Whatever was sent, nothing of this batch may stay half done.
                with suppress(Exception):
                    conn.rollback()
                raise
        if written is None:
            return
        accepted, ids, hashes = written
        # Committed: only now may the callers hear their ids.
        for request in accepted:
            versions = request.stream_versions()
            request.ids = [ids[k] for k in versions]
            request.hashes = [hashes[k] for k in versions]

    def _write_batch_on(
        self, conn: Any, batch: Batch
    ) -> tuple[Batch, dict[tuple[uuid.UUID, int], int], dict[tuple[uuid.UUID, int], bytes]] | None:
        """Two round trips: BEGIN, the lock and the one read; the one insert with COMMIT.
        BEGIN and COMMIT are sent as statements: ``conn.transaction()`` in pipeline mode
        nests pipelines that sync on entry and exit (issue 15, ADR 0071)."""
        keys = [k for request in batch for k in request.stream_versions()]
        subjects = [k.subject for request in batch for k in request.keys]
        # Tuple rows: the library's dict rows cost a dict per row, keyed by column name.
        with conn.pipeline(), conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(_BEGIN)
            curs.execute(self._lock_and_notify.on(curs), prepare=True)
            # Under the lock nobody else appends: what is stored now stays stored
            # until this transaction commits, so the check below is exact, and so
            # are the chain's predecessors, head and last checkpoint read with it.
            before = [(k[0], k[1] - 1) for k in keys if k[1] > 1]
            curs.execute(
                self._taken_statement.on(curs),
                (
                    pgarrays.uuids([k[0] for k in keys]),
                    pgarrays.int8s([k[1] for k in keys]),
                    pgarrays.uuids([k[0] for k in before]),
                    pgarrays.int8s([k[1] for k in before]),
                    pgarrays.texts(subjects),
                    len(keys),
                ),
            )
            stored: set[tuple[uuid.UUID, int]] = set()
            keyed: set[str] = set()
            known: dict[tuple[uuid.UUID, int], bytes] = {}
            head: tuple[int, bytes] | None = None
            checkpoint: tuple[int, float] | None = None
            taken: list[int] = []
            # (kind, id, v, h, t, s): uuid, bigint, bytea, float8 and text load as
            # UUID, int, bytes, float and str.
            for kind, stream, version, digest, signed_at, subject in curs.fetchall():
                if kind == 0:
                    stored.add((stream, version))
                elif kind == 1:
                    known[(stream, version)] = digest
                elif kind == 2:
                    head = (version, digest)
                elif kind == 3:
                    checkpoint = (version, signed_at)
                elif kind == 4:
                    keyed.add(subject)
                else:
                    taken.append(version)
            accepted, refused = partition(batch, stored, keyed)
            for request in refused:
                refuse(request)
            events = [e for request in accepted for e in request.events]
            if not events:
                # COMMIT, not ROLLBACK: a ROLLBACK statement makes psycopg drop its
                # prepared statements mid-pipeline ("prepared statement does not exist").
                curs.execute(_COMMIT)
                return None
            # In batch order, as the insert's default would have numbered them; the ids
            # of refused requests' events stay unused (a gap, as a rollback leaves).
            taken.sort()
            streams = [_uuid(e.originator_id) for e in events]
            positions = taken[: len(events)]
            ops = _PrefetchedOps(_PostgresOps(curs, self.datastore.schema), known, head, checkpoint)
            self._append_chain(ops, events, positions)
            rows = ops.rows
            assert rows is not None
            new_keys = [k for request in accepted for k in request.keys]
            stream_ids = pgarrays.uuids(streams)
            versions = pgarrays.int8s([e.originator_version for e in events])
            curs.execute(
                self._insert_statement.on(curs),
                (
                    pgarrays.int8s(positions),
                    stream_ids,
                    versions,
                    pgarrays.texts([e.topic for e in events]),
                    pgarrays.byteas([e.state for e in events]),
                    pgarrays.texts([k.subject for k in new_keys]),
                    pgarrays.byteas([k.wrapped for k in new_keys]),
                    pgarrays.uuids([r.stream for r in rows]),
                    pgarrays.int8s([r.version for r in rows]),
                    pgarrays.int8s([r.position for r in rows]),
                    pgarrays.byteas([r.prev_hash for r in rows]),
                    pgarrays.byteas([r.hash for r in rows]),
                    pgarrays.byteas([r.log_hash for r in rows]),
                ),
            )
            curs.execute(_COMMIT)
            # Leaving the block syncs the pipeline: the insert and COMMIT are sent and
            # answered (or raise) before this returns.
        ids = {
            (stream, e.originator_version): position
            for stream, e, position in zip(streams, events, positions, strict=True)
        }
        return accepted, ids, {(r.stream, r.version): r.hash for r in rows}

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        stream = _uuid(originator_id)
        shape = (gt is None, lte is None, desc, limit is None)
        statement = self._select_statements.get(shape)
        if statement is None:
            statement = self._select_statements.setdefault(
                shape, self._select_statement(gt, lte, desc, limit)
            )
        _, params = _select_bounds(gt, lte, desc, limit, "%s")
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement.on(conn), [stream, *params, stream, (gt or 0) + 1], prepare=True)
            found = curs.fetchall()
        rows: list[tuple[int, StoredEvent]] = []
        chain: dict[int, tuple[int, bytes, bytes]] = {}
        # (kind, position, version, topic, state, prev_hash, hash): bigint and bytea load
        # as int and bytes.
        for kind, position, version, topic, state, prev, own in found:
            if kind == 0:
                rows.append(
                    (
                        position,
                        StoredEvent(
                            originator_id=stream,
                            originator_version=version,
                            topic=topic,
                            state=state,
                        ),
                    )
                )
            else:
                chain[version] = (position, prev, own)
        if lte is not None:
            chain = {v: row for v, row in chain.items() if v <= lte}
        return self._verified(stream, rows, chain, gt=gt, lte=lte, desc=desc, limit=limit)

    def _select_statement(
        self, gt: int | None, lte: int | None, desc: bool, limit: int | None
    ) -> _Statement:
        bounds, _ = _select_bounds(gt, lte, desc, limit, "%s")
        # One statement sees one snapshot, so the events and their chain entries are read
        # together in a single round trip (no REPEATABLE READ transaction around two
        # reads). The chain is read from just below the lowest version returned.
        return _Statement(
            SQL(
                "WITH ev AS (SELECT notification_id, originator_version, topic, state FROM {} "
                "WHERE originator_id = %s" + bounds + ") "
                "SELECT 0 AS kind, notification_id AS position, originator_version, topic, "
                "state, NULL::bytea AS prev_hash, NULL::bytea AS hash FROM ev "
                "UNION ALL "
                "SELECT 1, position, originator_version, NULL, NULL, prev_hash, hash FROM {} "
                "WHERE originator_id = %s AND originator_version >= "
                "(SELECT COALESCE(MIN(originator_version), %s) - 1 FROM ev)"
            ).format(
                Identifier(self.datastore.schema, self.events_table_name),
                Identifier(self.datastore.schema, CHAIN_TABLE),
            )
        )

    def select_heads(
        self, ids: Sequence[uuid.UUID], upto: int
    ) -> dict[uuid.UUID, list[StoredEvent]]:
        """As ``ChainedSQLiteRecorder.select_heads``: two queries per 1,000 ids."""
        events_table = Identifier(self.datastore.schema, self.events_table_name)
        chain_table = Identifier(self.datastore.schema, CHAIN_TABLE)
        found: dict[uuid.UUID, list[StoredEvent]] = {}
        for start in range(0, len(ids), 1000):
            part = list(ids[start : start + 1000])
            with self.datastore.transaction(commit=False) as curs:
                curs.execute(_REPEATABLE_READ)
                curs.execute(
                    SQL(
                        "SELECT notification_id, originator_id, originator_version, topic, "
                        "state FROM {} WHERE originator_id = ANY(%b) AND originator_version <= %s"
                    ).format(events_table),
                    (part, upto),
                )
                events = [
                    (
                        str(r["originator_id"]),
                        int(r["notification_id"]),
                        int(r["originator_version"]),
                        str(r["topic"]),
                        bytes(r["state"]),
                    )
                    for r in curs.fetchall()
                ]
                curs.execute(
                    SQL(
                        "SELECT originator_id, originator_version, position, prev_hash, hash "
                        "FROM {} WHERE originator_id = ANY(%b) AND originator_version <= %s"
                    ).format(chain_table),
                    (part, upto),
                )
                chains = [
                    (
                        str(r["originator_id"]),
                        int(r["originator_version"]),
                        int(r["position"]),
                        bytes(r["prev_hash"]),
                        bytes(r["hash"]),
                    )
                    for r in curs.fetchall()
                ]
            found.update(self._heads(events, chains, upto))
        return found

    def select_streams_with(self, ids: Sequence[uuid.UUID], topic: str) -> set[uuid.UUID]:
        """As ``ChainedSQLiteRecorder.select_streams_with``: one query per 1,000 ids."""
        events_table = Identifier(self.datastore.schema, self.events_table_name)
        found: set[uuid.UUID] = set()
        for start in range(0, len(ids), 1000):
            part = list(ids[start : start + 1000])
            with self.datastore.transaction(commit=False) as curs:
                curs.execute(
                    SQL(
                        "SELECT DISTINCT originator_id FROM {} "
                        "WHERE originator_id = ANY(%b) AND topic = %s"
                    ).format(events_table),
                    (part, topic),
                )
                found.update(_uuid(r["originator_id"]) for r in curs.fetchall())
        return found


# ------------------------------------------------------------ whole-log checks

Recorder = ChainedSQLiteRecorder | ChainedPostgresRecorder


@dataclass(frozen=True)
class Integrity:
    verified: bool
    head_hash: str | None
    version: int


def stream_integrity(recorder: Any, stream: uuid.UUID, upto: int | None = None) -> Integrity:
    """Re-read ``stream`` (checked on load) and name the hash of its last event."""
    events = recorder.select_events(stream, lte=upto)
    if not events:
        return Integrity(True, None, 0)
    version = events[-1].originator_version
    head = chain_hash(recorder, stream, version)
    return Integrity(True, head.hex() if head else None, version)


def chain_hash(recorder: Any, stream: uuid.UUID, version: int) -> bytes | None:
    if isinstance(recorder, ChainedSQLiteRecorder):
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT hash FROM {CHAIN_TABLE} WHERE originator_id=? AND originator_version=?",
                (stream.hex, version),
            )
            row = c.fetchone()
            return bytes(row[0]) if row else None
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(
            SQL("SELECT hash FROM {} WHERE originator_id = %s AND originator_version = %s").format(
                Identifier(recorder.datastore.schema, CHAIN_TABLE)
            ),
            (stream, version),
        )
        found = curs.fetchone()
        return bytes(found["hash"]) if found else None


def find_by_hash(recorder: Any, digest: bytes) -> tuple[uuid.UUID, int, int] | None:
    """(stream, version, position) of the event whose chain hash is ``digest``."""
    if isinstance(recorder, ChainedSQLiteRecorder):
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT originator_id, originator_version, position FROM {CHAIN_TABLE} "
                "WHERE hash=?",
                (digest,),
            )
            row = c.fetchone()
            return (uuid.UUID(row[0]), int(row[1]), int(row[2])) if row else None
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(
            SQL(
                "SELECT originator_id, originator_version, position FROM {} WHERE hash = %s"
            ).format(Identifier(recorder.datastore.schema, CHAIN_TABLE)),
            (digest,),
        )
        found = curs.fetchone()
        if not found:
            return None
        return (
            _uuid(found["originator_id"]),
            int(found["originator_version"]),
            int(found["position"]),
        )


def _sql(
    recorder: Any, sqlite: str, pg: str, params: Sequence[Any], cursor: Any = None
) -> list[tuple[Any, ...]]:
    if isinstance(recorder, ChainedSQLiteRecorder):
        if cursor is not None:
            cursor.execute(sqlite.format(events=recorder.events_table_name), params)
            return [tuple(r) for r in cursor.fetchall()]
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(sqlite.format(events=recorder.events_table_name), params)
            return [tuple(r) for r in c.fetchall()]
    schema = recorder.datastore.schema
    statement = SQL(pg).format(  # type: ignore[arg-type]
        events=Identifier(schema, recorder.events_table_name),
        chain=Identifier(schema, CHAIN_TABLE),
        checkpoints=Identifier(schema, CHECKPOINT_TABLE),
    )
    if cursor is not None:
        cursor.execute(statement, params)
        return [tuple(r.values()) for r in cursor.fetchall()]
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(statement, params)
        return [tuple(r.values()) for r in curs.fetchall()]


@contextmanager
def _snapshot(recorder: Any) -> Iterator[Any]:
    """One read transaction whose statements all see the same committed state."""
    with recorder.datastore.transaction(commit=False) as cursor:
        if not isinstance(recorder, ChainedSQLiteRecorder):
            cursor.execute(_REPEATABLE_READ)
        yield cursor


def _page_events(
    recorder: Any, after: int, limit: int, cursor: Any = None
) -> list[tuple[Any, ...]]:
    return _sql(
        recorder,
        "SELECT rowid, originator_id, originator_version, topic, state FROM {events} "
        "WHERE rowid > ? ORDER BY rowid LIMIT ?",
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {events} "
        "WHERE notification_id > %s ORDER BY notification_id LIMIT %s",
        (after, limit),
        cursor,
    )


def _page_chain(
    recorder: Any, after: int, upto: int | None, limit: int, cursor: Any = None
) -> list[tuple[Any, ...]]:
    bound = upto if upto is not None else 2**62
    return _sql(
        recorder,
        f"SELECT position, originator_id, originator_version, prev_hash, hash, log_hash "
        f"FROM {CHAIN_TABLE} WHERE position > ? AND position <= ? ORDER BY position LIMIT ?",
        "SELECT position, originator_id, originator_version, prev_hash, hash, log_hash "
        "FROM {chain} WHERE position > %s AND position <= %s ORDER BY position LIMIT %s",
        (after, bound, limit),
        cursor,
    )


def _chain_before(recorder: Any, position: int) -> tuple[int, bytes] | None:
    rows = _sql(
        recorder,
        f"SELECT position, log_hash FROM {CHAIN_TABLE} WHERE position < ? "
        "ORDER BY position DESC LIMIT 1",
        "SELECT position, log_hash FROM {chain} WHERE position < %s ORDER BY position DESC LIMIT 1",
        (position,),
    )
    return (int(rows[0][0]), bytes(rows[0][1])) if rows else None


def _stored_hash(recorder: Any, stream: uuid.UUID, version: int) -> bytes | None:
    return chain_hash(recorder, stream, version)


def checkpoints(recorder: Any, since: int = 0) -> list[Checkpoint]:
    rows = _sql(
        recorder,
        f"SELECT position, log_hash, signed_at, key_id, signature FROM {CHECKPOINT_TABLE} "
        "WHERE position >= ? ORDER BY position",
        "SELECT position, log_hash, signed_at, key_id, signature FROM {checkpoints} "
        "WHERE position >= %s ORDER BY position",
        (since,),
    )
    return [Checkpoint(int(r[0]), bytes(r[1]), float(r[2]), str(r[3]), bytes(r[4])) for r in rows]


@dataclass
class VerifyReport:
    events: int = 0
    checkpoints: int = 0
    head_position: int = 0
    head_log_hash: str | None = None


def verify_log(
    recorder: Any,
    signer: Signer | None,
    start: int = 1,
    page: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Recompute every stream chain, the log chain and every checkpoint from ``start``.

    Raises ChainBroken naming the first broken stream, version and position.
    """
    report = VerifyReport()
    before = _chain_before(recorder, start) if start > 1 else None
    prev_log = before[1] if before else GENESIS
    heads: dict[bytes, tuple[int, bytes]] = {}
    pending_cps = [c for c in checkpoints(recorder, start)]
    cp_index = 0
    seen_logs: dict[int, bytes] = {}
    after = start - 1
    for events, chain in _pages(recorder, after, page):
        for event, link in zip(events, chain, strict=True):
            _check_log_entry(recorder, event, link, heads, prev_log)
            prev_log = link[5]
            seen_logs[link[0]] = prev_log
            report.events += 1
            report.head_position = link[0]
        while (
            cp_index < len(pending_cps) and pending_cps[cp_index].position <= report.head_position
        ):
            _check_checkpoint(pending_cps[cp_index], seen_logs, signer)
            cp_index += 1
            report.checkpoints += 1
        seen_logs.clear()
        if progress is not None:
            progress(len(events))
    for cp in pending_cps[cp_index:]:
        raise ChainBroken("checkpoint", None, cp.position, "checkpoint beyond the end of the log")
    report.head_log_hash = prev_log.hex() if report.events else None
    return report


def _pages(
    recorder: Any, after: int, page: int
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Events and chain entries in lockstep; any mismatch in presence or order is raised."""
    while True:
        with _snapshot(recorder) as cursor:
            events = _page_events(recorder, after, page, cursor)
            upto = int(events[-1][0]) if len(events) == page else None
            chain = _page_chain(recorder, after, upto, page * 2, cursor)
        for index in range(max(len(events), len(chain))):
            e = events[index] if index < len(events) else None
            c = chain[index] if index < len(chain) else None
            if e is None or (c is not None and int(c[0]) < int(e[0])):
                assert c is not None
                raise ChainBroken(
                    str(_uuid(c[1])), int(c[2]), int(c[0]), "chained event is missing or moved"
                )
            if c is None or int(c[0]) > int(e[0]):
                raise ChainBroken(
                    str(_uuid(e[1])), int(e[2]), int(e[0]), "event has no chain entry"
                )
        if not events:
            return
        yield events, chain
        after = int(events[-1][0])


def _id_bytes(raw: Any) -> bytes:
    if isinstance(raw, uuid.UUID):
        return raw.bytes
    if isinstance(raw, str) and len(raw) == 32:
        return bytes.fromhex(raw)
    return uuid.UUID(str(raw)).bytes


def _check_log_entry(
    recorder: Any,
    event: tuple[Any, ...],
    link: tuple[Any, ...],
    heads: dict[bytes, tuple[int, bytes]],
    prev_log: bytes,
) -> None:
    position, raw_id, version, topic, state = event
    stream = _id_bytes(raw_id)
    position, version = int(position), int(version)
    if _id_bytes(link[1]) != stream or int(link[2]) != version:
        raise ChainBroken(
            str(uuid.UUID(bytes=stream)),
            version,
            position,
            f"position holds another event than chained ({_uuid(link[1])} v{link[2]})",
        )
    prev, own, entry_log = bytes(link[3]), bytes(link[4]), bytes(link[5])
    if _event_hash(stream, version, position, topic, bytes(state), prev) != own:
        raise ChainBroken(
            str(uuid.UUID(bytes=stream)), version, position, "event content does not match its hash"
        )
    if version == 1:
        expected: bytes | None = GENESIS
    else:
        head = heads.get(stream)
        if head is not None:
            expected = head[1] if head[0] == version - 1 else None
        else:
            expected = _stored_hash(recorder, uuid.UUID(bytes=stream), version - 1)
    if expected is None or prev != expected:
        raise ChainBroken(
            str(uuid.UUID(bytes=stream)), version, position, "link to the previous event is broken"
        )
    if log_hash(prev_log, position, own) != entry_log:
        raise ChainBroken(
            str(uuid.UUID(bytes=stream)),
            version,
            position,
            "log chain broken (an event was removed or moved)",
        )
    heads[stream] = (version, own)


def _check_checkpoint(cp: Checkpoint, logs: dict[int, bytes], signer: Signer | None) -> None:
    recomputed = logs.get(cp.position)
    if recomputed is None or recomputed != cp.log_hash:
        raise ChainBroken("checkpoint", None, cp.position, "log differs from the signed checkpoint")
    if signer is None or not signer.verify(
        cp.key_id, checkpoint_message(cp.position, cp.log_hash), cp.signature
    ):
        raise ChainBroken("checkpoint", None, cp.position, "checkpoint signature does not verify")


def backfill(recorder: Any, page: int = 5000, force: bool = False) -> int:
    """Chain events stored before the chain existed (``yingke migrate``); returns how many.

    Runs in position order, continuing the log chain from the last chained event; events
    already chained are skipped, so an interrupted backfill can be re-run. It signs one
    checkpoint when done, and refuses to run once any checkpoint exists: after that,
    an unchained event is not history from before the upgrade but a row someone added or
    whose chain entry someone removed, and re-chaining it would launder it.
    """
    if not force and checkpoints(recorder):
        return 0
    signer, recorder.signer = recorder.signer, None
    try:
        done = _rechain(recorder, page)
    finally:
        recorder.signer = signer
    if done and signer is not None:
        head = _sql(
            recorder,
            f"SELECT position, log_hash FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1",
            "SELECT position, log_hash FROM {chain} ORDER BY position DESC LIMIT 1",
            (),
        )
        position, digest = int(head[0][0]), bytes(head[0][1])
        key_id, signature = signer.sign_checkpoint(checkpoint_message(position, digest))
        cp = Checkpoint(position, digest, time.time(), key_id, signature)
        if isinstance(recorder, ChainedSQLiteRecorder):
            with recorder.datastore.transaction(commit=True) as c:
                _SQLiteOps(c).insert_checkpoint(cp)
        else:
            with recorder.datastore.transaction(commit=True) as curs:
                _PostgresOps(curs, recorder.datastore.schema).insert_checkpoint(cp)
    return done


def _rechain(recorder: Any, page: int) -> int:
    done = 0
    while True:
        head = _sql(
            recorder,
            f"SELECT MAX(position) FROM {CHAIN_TABLE}",
            "SELECT MAX(position) FROM {chain}",
            (),
        )
        after = int(head[0][0]) if head and head[0][0] is not None else 0
        rows = _page_events(recorder, after, page)
        if not rows:
            return done
        stored = [
            StoredEvent(
                originator_id=_uuid(r[1]),
                originator_version=int(r[2]),
                topic=r[3],
                state=bytes(r[4]),
            )
            for r in rows
        ]
        positions = [int(r[0]) for r in rows]
        if isinstance(recorder, ChainedSQLiteRecorder):
            with recorder.datastore.transaction(commit=True) as c:
                recorder._append_chain(_SQLiteOps(c), stored, positions)
        else:
            with recorder.datastore.transaction(commit=True) as curs:
                recorder._lock_table(curs)
                recorder._append_chain(
                    _PostgresOps(curs, recorder.datastore.schema), stored, positions
                )
        done += len(rows)


# ------------------------------------------------------------ evidence bundles


def stream_links(recorder: Any, stream: uuid.UUID) -> list[ChainRow]:
    """The chain entries of one stream in version order, as an evidence bundle prints them."""
    rows = _sql(
        recorder,
        f"SELECT originator_id, originator_version, position, prev_hash, hash, log_hash "
        f"FROM {CHAIN_TABLE} WHERE originator_id = ? ORDER BY originator_version",
        "SELECT originator_id, originator_version, position, prev_hash, hash, log_hash "
        "FROM {chain} WHERE originator_id = %s ORDER BY originator_version",
        (stream.hex if isinstance(recorder, ChainedSQLiteRecorder) else stream,),
    )
    return [
        ChainRow(_uuid(r[0]), int(r[1]), int(r[2]), bytes(r[3]), bytes(r[4]), bytes(r[5]))
        for r in rows
    ]


def covering_checkpoint(recorder: Any, position: int) -> Checkpoint | None:
    """The first signed checkpoint at or after ``position``: it vouches for every event
    up to it, because its log hash folds in each of them (ADR 0035)."""
    rows = _sql(
        recorder,
        f"SELECT position, log_hash, signed_at, key_id, signature FROM {CHECKPOINT_TABLE} "
        "WHERE position >= ? ORDER BY position LIMIT 1",
        "SELECT position, log_hash, signed_at, key_id, signature FROM {checkpoints} "
        "WHERE position >= %s ORDER BY position LIMIT 1",
        (position,),
    )
    if not rows:
        return None
    r = rows[0]
    return Checkpoint(int(r[0]), bytes(r[1]), float(r[2]), str(r[3]), bytes(r[4]))


def seal(recorder: Any, signer: Signer, position: int) -> Checkpoint:
    """A signed checkpoint covering ``position``, signing the log head now if none does yet.

    Evidence is asked for right after the decision it proves, usually before the periodic
    checkpoint; signing the committed head is safe at any time (a later append only extends
    the log), and two callers racing sign the same head, of which the store keeps one.
    """
    found = covering_checkpoint(recorder, position)
    if found is not None:
        return found
    head = _sql(
        recorder,
        f"SELECT position, log_hash FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1",
        "SELECT position, log_hash FROM {chain} ORDER BY position DESC LIMIT 1",
        (),
    )
    if not head or int(head[0][0]) < position:
        raise ChainBroken("checkpoint", None, position, "event is beyond the chained log")
    at, digest = int(head[0][0]), bytes(head[0][1])
    key_id, signature = signer.sign_checkpoint(checkpoint_message(at, digest))
    cp = Checkpoint(at, digest, time.time(), key_id, signature)
    if isinstance(recorder, ChainedSQLiteRecorder):
        with recorder.datastore.transaction(commit=True) as c:
            _SQLiteOps(c).insert_checkpoint(cp)
    else:
        with recorder.datastore.transaction(commit=True) as curs:
            _PostgresOps(curs, recorder.datastore.schema).insert_checkpoint(cp)
    # The store may already hold another signature of that head: answer the stored one.
    stored = covering_checkpoint(recorder, position)
    assert stored is not None
    return stored
