"""Snapshots of long streams, bound to the hash chain (ADR 0060).

A buyer's stream grows by a follow-up or two a day; after a year, reading it means
fetching, checking, decoding and replaying a thousand events. Here a stream is folded
from its latest snapshot (taken every ``INTERVAL`` versions) and the events after it.

How a snapshot keeps the chain's promise (nothing edited is served as truth):

- It is taken only from events this process has just read through the chain check, and
  it records the chain ``hash`` of the event it stops at and that event's timestamp.
- It carries an HMAC under a key derived from YINGKE_SECRET over (stream, version,
  timestamp, head hash, code fingerprint, state): a row edited in the database fails it
  and the read raises ``ChainBroken`` (never falls back silently).
- Using it, the read checks that the chain still holds that head hash at its version, and
  the events after it are read through the chain check, which links the first of them to
  that hash: the tail cannot be edited, dropped or re-ordered unnoticed.
- The events under it are not re-hashed on every read (that is the cost it saves); they
  are re-read through the chain check the first time a process uses a snapshot of the
  stream and again once ``RECHECK_SECONDS`` have passed, and by every read that fetches
  them (history, evidence, ``yingke verify``). An edit there is noticed within that
  window by a read, and meanwhile it is not served: the snapshot holds what the events
  said when they last passed the check.
- Its state is pickled (fast, and faithful to the aggregate's own objects); it is
  unpickled only after its HMAC verified, so a forged row never reaches ``pickle``.
  Snapshots of other code (the fingerprint of the ``domain`` package) are ignored: a
  new release folds from events and takes its own.

Snapshots are derived data: deleting the table loses nothing but speed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import struct
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from eventsourcing.persistence import StoredEvent
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

import domain
from domain.ports import Folded
from domain.services.uow import UnitOfWork, fold
from yingke.chain import (
    CHAIN_TABLE,
    SNAPSHOT_TABLE,
    ChainBroken,
    ChainedSQLiteRecorder,
    _count_failure,
)

INTERVAL = 100  # versions between snapshots of one stream
RECHECK_SECONDS = 60.0  # how long a process trusts a prefix it re-read through the check
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEADER = struct.Struct(">16sQq")
# A snapshot another release took at the same version is replaced (it is ignored on
# reads); one of this code stays as the first writer left it.
_REPLACE_OTHER_CODE = (
    "ON CONFLICT (originator_id, originator_version) DO UPDATE SET last_at = excluded.last_at, "
    "head_hash = excluded.head_hash, code = excluded.code, state = excluded.state, "
    "mac = excluded.mac WHERE {table}.code <> excluded.code"
)


def _fingerprint() -> str:
    """The code a snapshot's state was pickled from: the domain's modules, and the
    library and interpreter whose objects the pickle also holds (the aggregate base)."""
    digest = hashlib.sha256()
    digest.update(f"{package_version('eventsourcing')}|{sys.version_info[:2]}".encode())
    root = Path(domain.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:32]


CODE = _fingerprint()


def micros(at: datetime) -> int:
    """An instant as whole microseconds since the epoch (exact, unlike a float)."""
    return (at - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class _Row:
    version: int
    last_at: int
    head_hash: bytes
    state: bytes
    mac: bytes
    chain_hash: bytes | None


@dataclass
class _Read:
    """What one fold's statement returned: (position, event) pairs and version →
    (position, prev_hash, hash) chain entries, for the range folded and for ``also``."""

    snapshot: _Row | None = None
    events: list[tuple[int, StoredEvent]] = field(default_factory=list)
    chain: dict[int, tuple[int, bytes, bytes]] = field(default_factory=dict)
    also: list[tuple[int, StoredEvent]] = field(default_factory=list)
    also_chain: dict[int, tuple[int, bytes, bytes]] = field(default_factory=dict)


# One statement for a fold (the snapshot with its chain hash, the events after it, their
# chain entries, and optionally one more event under it with its link): on PostgreSQL one
# round trip instead of four (snapshot, events, the deciding event, the head's hash).
# ``lo``: the snapshot's version (0 without one); ``hi``: the first snapshot after the
# instant (as-of reads stop there), else the end of the stream. Kinds: 0 the snapshot
# (position = last_at, a = head_hash, b = state, c = mac, d = the chain's hash at its
# version), 1 and 3 events (b = state), 2 and 4 chain entries (a = prev_hash, b = hash).
_FOLD = (
    "WITH snap AS (SELECT s.originator_version, s.last_at, s.head_hash, s.state, s.mac, "
    "c.hash FROM {snaps} s LEFT JOIN {chain} c ON c.originator_id = s.originator_id AND "
    "c.originator_version = s.originator_version WHERE s.originator_id = :id AND "
    "s.code = :code AND s.last_at <= :until ORDER BY s.originator_version DESC LIMIT 1), "
    "span AS (SELECT COALESCE((SELECT originator_version FROM snap), 0) AS lo, "
    "COALESCE(CASE WHEN :asof THEN (SELECT MIN(originator_version) FROM {snaps} WHERE "
    "originator_id = :id AND code = :code AND last_at > :until) END, :max) AS hi) "
    "SELECT 0 AS kind, originator_version AS version, last_at AS position, head_hash AS a, "
    "state AS b, mac AS c, hash AS d, {null_text} AS topic FROM snap "
    "UNION ALL SELECT 1, e.originator_version, e.{position}, NULL, e.state, NULL, NULL, "
    "e.topic FROM {events} e WHERE e.originator_id = :id AND "
    "e.originator_version > (SELECT lo FROM span) AND "
    "e.originator_version <= (SELECT hi FROM span) "
    "UNION ALL SELECT 2, c.originator_version, c.position, c.prev_hash, c.hash, NULL, NULL, "
    "NULL FROM {chain} c WHERE c.originator_id = :id AND "
    "c.originator_version >= (SELECT lo FROM span) AND "
    "c.originator_version <= (SELECT hi FROM span) "
    "UNION ALL SELECT 3, e.originator_version, e.{position}, NULL, e.state, NULL, NULL, "
    "e.topic FROM {events} e WHERE e.originator_id = :id AND e.originator_version = :also "
    "UNION ALL SELECT 4, c.originator_version, c.position, c.prev_hash, c.hash, NULL, NULL, "
    "NULL FROM {chain} c WHERE c.originator_id = :id AND "
    "c.originator_version BETWEEN :also - 1 AND :also"
)

# The event at one version with its chain entry and the one before (kinds 3 and 4).
_EVENT = _FOLD[_FOLD.index("SELECT 3,") :].replace(":also", ":version")


class Snapshots:
    """``History`` for the domain (``domain.ports``): folds a stream as of an instant from
    its latest verified snapshot and the chain-checked events after it."""

    def __init__(self, uow: UnitOfWork, key: bytes, interval: int = INTERVAL) -> None:
        self.uow = uow
        self.recorder: Any = uow.store.recorder
        self.mapper = uow.store.mapper
        self.key = key
        self.interval = interval
        self.sqlite = isinstance(self.recorder, ChainedSQLiteRecorder)
        self._checked: dict[uuid.UUID, tuple[int, float]] = {}  # stream → (version, when)
        self._lock = threading.Lock()
        self._present: bool | None = None  # the table exists (a store not yet migrated)
        self.taken = 0  # snapshots this process wrote (for tests and the bench)
        self.failures = 0  # snapshot writes that failed (the reads still answered)
        self.used = 0  # folds that started from a snapshot
        recorder: Any = uow.store.recorder
        events = recorder.events_table_name
        if self.sqlite:
            self._sqlite_fold = _FOLD.format(
                snaps=SNAPSHOT_TABLE, chain=CHAIN_TABLE, events=events, position="rowid",
                null_text="NULL",
            )  # fmt: skip
            self._sqlite_event = _EVENT.format(chain=CHAIN_TABLE, events=events, position="rowid")
        else:
            schema = recorder.datastore.schema
            typed = _FOLD.replace(":id", "%(id)s").replace(":code", "%(code)s")
            for name, kind in (("until", "bigint"), ("asof", "boolean"), ("max", "bigint"),
                               ("also", "bigint")):  # fmt: skip
                typed = typed.replace(f":{name}", f"%({name})s::{kind}")
            self._postgres_fold = SQL(typed).format(
                snaps=Identifier(schema, SNAPSHOT_TABLE),
                chain=Identifier(schema, CHAIN_TABLE),
                events=Identifier(schema, events),
                position=SQL("notification_id"),
                null_text=SQL("NULL::text"),
            )
            self._postgres_event = SQL(
                _EVENT.replace(":id", "%(id)s").replace(":version", "%(version)s::bigint")
            ).format(
                chain=Identifier(schema, CHAIN_TABLE),
                events=Identifier(schema, events),
                position=SQL("notification_id"),
            )

    # ------------------------------------------------------------------ reading

    def fold(self, stream: uuid.UUID, at: datetime | None, also: int | None = None) -> Folded:
        return self._fold(stream, at, also)

    def whole(self, stream: uuid.UUID) -> Folded:
        """Every event, folded from the first (no snapshot), with the head's hash: one
        statement. Snapshots are not taken here (the reads that use them take them)."""
        return self._fold(stream, None, None, whole=True)

    def _fold(
        self, stream: uuid.UUID, at: datetime | None, also: int | None, whole: bool = False
    ) -> Folded:
        until = micros(at) if at is not None else None
        present = self._table_present()
        read = self._read(stream, until, also, whole) if present else None
        row = read.snapshot if read is not None else None
        state: Any = None
        base = 0
        if row is not None:
            state = self._open(stream, row)
            base = row.version
            self.used += 1
        if read is None:
            stored = self.recorder.select_events(stream)
        else:
            # As ``select_events(gt=base, lte=the next snapshot)`` checks them, from the rows
            # this statement read (the chain from the snapshot's own entry up).
            stored = self.recorder._verified(
                stream, read.events, read.chain, gt=base or None, lte=None, desc=False, limit=None
            )
        if row is not None:
            self._recheck_prefix(stream, base)
        events: list[Any] = []
        folded: list[Any] = []
        due: list[tuple[int, int, bytes]] = []  # (version, last_at, pickled state)
        for item in stored:
            event: Any = self.mapper.to_domain_event(item)
            events.append(event)
            if until is not None and micros(event.timestamp) > until:
                continue
            state = event.mutate(state)
            folded.append(event)
            if present and not whole and event.originator_version % self.interval == 0:
                due.append((event.originator_version, micros(event.timestamp), pickle.dumps(state)))
        if due:
            try:
                self._take(stream, due)
            except Exception as exc:
                # A snapshot is a cache of what was just folded; a busy writer, a full disk
                # or a read-only role must not turn a good read into a 500.
                self.failures += 1
                logging.getLogger("yingke").warning(
                    "snapshot of %s not taken: %s: %s", stream, type(exc).__name__, exc
                )
        head = None
        extra = None
        if read is not None:
            if until is None and read.chain:
                # Read to the end and checked with the events: the hash of the last one.
                head = read.chain[max(read.chain)][2]
            extra = self._extra(stream, events, read, also)
        return Folded(state, events, folded, base, head, extra)

    def many(self, streams: list[uuid.UUID]) -> dict[uuid.UUID, Folded]:
        """Whole streams, chain-checked as one by one, two statements per 1,000 (the
        recorder's ``select_heads``); none folded from or taking snapshots."""
        found: dict[uuid.UUID, Folded] = {}
        for stream, stored in self.recorder.select_heads(
            list(dict.fromkeys(streams)), 2**62
        ).items():
            events = [self.mapper.to_domain_event(s) for s in stored]
            found[stream] = Folded(fold(None, events), events, events, 0)
        return found

    def event(self, stream: uuid.UUID, version: int) -> Any:
        """One event and the two chain entries it is checked against, in one statement
        (the recorder's ``select_events`` reads the chain to the stream's end)."""
        if not self._table_present():
            return next(iter(self.uow.store.events.get(stream, gt=version - 1, lte=version)), None)
        params = {"id": stream.hex if self.sqlite else stream, "version": version}
        if self.sqlite:
            with self.recorder.datastore.transaction(commit=False) as c:
                c.execute(self._sqlite_event, params)
                found = c.fetchall()
        else:
            with (
                self.recorder.datastore.get_connection() as conn,
                conn.cursor(row_factory=tuple_row) as curs,
            ):
                curs.execute(self._postgres_event, params, prepare=True)
                found = curs.fetchall()
        read = _Read()
        self._collect(stream, found, read)
        return self._extra(stream, [], read, version)

    def _extra(self, stream: uuid.UUID, events: list[Any], read: _Read, also: int | None) -> Any:
        """The event at version ``also``, checked against its chain entry and the one
        before it (None if the stream has no such event)."""
        if also is None:
            return None
        known = next((e for e in events if e.originator_version == also), None)
        if known is not None or not read.also_chain:
            return known
        (checked,) = self.recorder._verified(
            stream, read.also, read.also_chain, gt=also - 1, lte=also, desc=False, limit=None
        ) or (None,)  # fmt: skip
        return None if checked is None else self.mapper.to_domain_event(checked)

    def _read(
        self, stream: uuid.UUID, until: int | None, also: int | None, whole: bool = False
    ) -> _Read:
        """The latest snapshot at or before ``until`` with the chain's hash at its version,
        the events after it up to the first snapshot after ``until`` (to the end for the
        current state) with their chain entries, and the event ``also``: one statement."""
        params = {
            "id": stream.hex if self.sqlite else stream,
            "code": CODE,
            # No snapshot was taken before the epoch: ``whole`` reads from the first event.
            "until": -1 if whole else until if until is not None else 2**62,
            "asof": until is not None,
            "max": 2**62,
            "also": also,
        }
        if self.sqlite:
            with self.recorder.datastore.transaction(commit=False) as c:
                c.execute(self._sqlite_fold, params)
                found = c.fetchall()
        else:
            with (
                self.recorder.datastore.get_connection() as conn,
                conn.cursor(row_factory=tuple_row) as curs,
            ):
                curs.execute(self._postgres_fold, params, prepare=True)
                found = curs.fetchall()
        read = _Read()
        self._collect(stream, found, read)
        return read

    @staticmethod
    def _collect(stream: uuid.UUID, found: Sequence[Any], read: _Read) -> None:
        for kind, version, position, a, b, c, d, topic in found:
            if kind == 0:
                read.snapshot = _Row(
                    int(version), int(position), bytes(a), bytes(b), bytes(c),
                    bytes(d) if d is not None else None,
                )  # fmt: skip
            elif kind in (1, 3):
                event = StoredEvent(
                    originator_id=stream, originator_version=int(version), topic=topic,
                    state=bytes(b),
                )  # fmt: skip
                (read.events if kind == 1 else read.also).append((int(position), event))
            else:
                entry = (int(position), bytes(a), bytes(b))
                (read.chain if kind == 2 else read.also_chain)[int(version)] = entry

    def _table_present(self) -> bool:
        """Whether ``yingke migrate`` created the table: a server started on a store that
        has not been migrated since reads every event, as before, rather than failing."""
        if self._present is None:
            if self.sqlite:
                with self.recorder.datastore.transaction(commit=False) as c:
                    c.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (SNAPSHOT_TABLE,),
                    )
                    self._present = c.fetchone() is not None
            else:
                name = f"{self.recorder.datastore.schema}.{SNAPSHOT_TABLE}"
                with self.recorder.datastore.transaction(commit=False) as curs:
                    curs.execute("SELECT to_regclass(%s) AS found", (name,))
                    found = curs.fetchone()
                    self._present = found is not None and found["found"] is not None
            if not self._present:
                logging.getLogger("yingke").warning(
                    "no %s table: long streams are read whole until `yingke migrate` runs",
                    SNAPSHOT_TABLE,
                )
        return self._present

    def _open(self, stream: uuid.UUID, row: _Row) -> Any:
        if not hmac.compare_digest(self._mac(stream, row.version, row.last_at, row.head_hash,
                                             row.state), row.mac):  # fmt: skip
            self._broken(stream, row.version, "snapshot does not match its seal")
        if row.chain_hash != row.head_hash:
            self._broken(stream, row.version, "snapshot is not on the chain it was taken from")
        return pickle.loads(row.state)  # sealed by our key, checked above

    def _recheck_prefix(self, stream: uuid.UUID, version: int) -> None:
        """Re-read the events under a snapshot through the chain check, once per process
        and then every ``RECHECK_SECONDS``: an edit there is noticed, if not on every
        read, within that window."""
        now = time.monotonic()
        with self._lock:
            checked = self._checked.get(stream)
        if checked is not None and checked[0] >= version and now - checked[1] < RECHECK_SECONDS:
            return
        self.recorder.select_events(stream, lte=version)  # raises ChainBroken
        with self._lock:
            self._checked[stream] = (version, now)

    def _broken(self, stream: uuid.UUID, version: int, reason: str) -> None:
        _count_failure()
        raise ChainBroken(str(stream), version, None, reason)

    # ------------------------------------------------------------------ writing

    def _mac(
        self, stream: uuid.UUID, version: int, last_at: int, head: bytes, state: bytes
    ) -> bytes:
        message = _HEADER.pack(stream.bytes, version, last_at) + head + CODE.encode() + state
        return hmac.new(self.key, b"yingke-snapshot-v1" + message, hashlib.sha256).digest()

    def _take(self, stream: uuid.UUID, due: Sequence[tuple[int, int, bytes]]) -> None:
        """Store snapshots at the versions just folded (their heads read from the chain:
        the events were checked against these very rows a moment ago)."""
        heads = self._heads(stream, [v for v, _, _ in due])
        rows = [
            (version, last_at, heads[version], state,
             self._mac(stream, version, last_at, heads[version], state))
            for version, last_at, state in due
            if version in heads
        ]  # fmt: skip
        if not rows:
            return
        if self.sqlite:
            with self.recorder.datastore.transaction(commit=True) as c:
                c.executemany(
                    f"INSERT INTO {SNAPSHOT_TABLE} (originator_id, originator_version, "
                    "last_at, head_hash, code, state, mac) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    + _REPLACE_OTHER_CODE.format(table=SNAPSHOT_TABLE),
                    [(stream.hex, v, t, h, CODE, s, m) for v, t, h, s, m in rows],
                )
        else:
            schema = self.recorder.datastore.schema
            with self.recorder.datastore.transaction(commit=True) as curs:
                curs.executemany(
                    SQL(
                        "INSERT INTO {table} (originator_id, originator_version, last_at, "
                        "head_hash, code, state, mac) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                        + _REPLACE_OTHER_CODE.format(table="{table}")
                    ).format(table=Identifier(schema, SNAPSHOT_TABLE)),
                    [(stream, v, t, h, CODE, s, m) for v, t, h, s, m in rows],
                )
        self.taken += len(rows)

    def _heads(self, stream: uuid.UUID, versions: list[int]) -> dict[int, bytes]:
        if self.sqlite:
            marks = ", ".join("?" * len(versions))
            with self.recorder.datastore.transaction(commit=False) as c:
                c.execute(
                    f"SELECT originator_version, hash FROM {CHAIN_TABLE} WHERE originator_id = ? "
                    f"AND originator_version IN ({marks})",
                    (stream.hex, *versions),
                )
                return {int(r[0]): bytes(r[1]) for r in c.fetchall()}
        schema = self.recorder.datastore.schema
        with self.recorder.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT originator_version, hash FROM {} WHERE originator_id = %s "
                    "AND originator_version = ANY(%s)"
                ).format(Identifier(schema, CHAIN_TABLE)),
                (stream, versions),
            )
            return {int(r["originator_version"]): bytes(r["hash"]) for r in curs.fetchall()}


def snapshot_key(secret_digest: str) -> bytes:
    """The HMAC key of snapshots, from a keyed digest of a fixed label (YINGKE_SECRET)."""
    return bytes.fromhex(secret_digest)
