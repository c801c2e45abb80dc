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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from psycopg.sql import SQL, Identifier

import domain
from domain.ports import Folded
from domain.services.uow import UnitOfWork
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

    # ------------------------------------------------------------------ reading

    def fold(self, stream: uuid.UUID, at: datetime | None) -> Folded:
        until = micros(at) if at is not None else None
        row, bound = self._latest(stream, until) if self._table_present() else (None, None)
        state: Any = None
        base = 0
        if row is not None:
            state = self._open(stream, row)
            base = row.version
            self.used += 1
        lte = bound if until is not None else None
        stored = self.recorder.select_events(stream, gt=base or None, lte=lte)
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
            if self._present and event.originator_version % self.interval == 0:
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
        return Folded(state, events, folded, base)

    def _latest(self, stream: uuid.UUID, until: int | None) -> tuple[_Row | None, int | None]:
        """The latest snapshot at or before ``until`` with the chain's hash at its version,
        and the version of the first snapshot after ``until`` (the events to read end
        there), in one statement."""
        limit = until if until is not None else 2**62
        if self.sqlite:
            statement = (
                f"SELECT (SELECT MIN(originator_version) FROM {SNAPSHOT_TABLE} WHERE "
                "originator_id = ? AND code = ? AND last_at > ?), "
                "b.originator_version, b.last_at, b.head_hash, b.state, b.mac, b.hash "
                f"FROM (SELECT 1) one LEFT JOIN (SELECT s.*, c.hash FROM {SNAPSHOT_TABLE} s "
                f"LEFT JOIN {CHAIN_TABLE} c ON c.originator_id = s.originator_id AND "
                "c.originator_version = s.originator_version WHERE s.originator_id = ? AND "
                "s.code = ? AND s.last_at <= ? ORDER BY s.originator_version DESC LIMIT 1) b "
                "ON 1 = 1"
            )
            params: tuple[Any, ...] = (stream.hex, CODE, limit, stream.hex, CODE, limit)
            with self.recorder.datastore.transaction(commit=False) as c:
                c.execute(statement, params)
                found = tuple(c.fetchone())
        else:
            schema = self.recorder.datastore.schema
            query = SQL(
                "SELECT (SELECT MIN(originator_version) FROM {snaps} WHERE "
                "originator_id = %s AND code = %s AND last_at > %s), "
                "b.originator_version, b.last_at, b.head_hash, b.state, b.mac, b.hash "
                "FROM (SELECT 1) one LEFT JOIN (SELECT s.*, c.hash FROM {snaps} s "
                "LEFT JOIN {chain} c ON c.originator_id = s.originator_id AND "
                "c.originator_version = s.originator_version WHERE s.originator_id = %s AND "
                "s.code = %s AND s.last_at <= %s ORDER BY s.originator_version DESC LIMIT 1) b "
                "ON true"
            ).format(
                snaps=Identifier(schema, SNAPSHOT_TABLE), chain=Identifier(schema, CHAIN_TABLE)
            )
            with self.recorder.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(query, (stream, CODE, limit, stream, CODE, limit), prepare=True)
                record = curs.fetchone()
                assert record is not None
                found = tuple(record.values())
        bound = int(found[0]) if found[0] is not None else None
        if found[1] is None:
            return None, bound
        version, last_at, head, state, mac, chain_hash = found[1:]
        row = _Row(
            int(version),
            int(last_at),
            bytes(head),
            bytes(state),
            bytes(mac),
            bytes(chain_hash) if chain_hash is not None else None,
        )
        return row, bound

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
