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
- Its state is JSON (``yingke.state_codec``, ADR 0068): decoding it can only produce
  plain data and the value classes named there, never run code. A state that would not
  decode to exactly what was folded is not stored.
- A process compares each snapshot row with a fold of the events under it the first
  time it uses that row: a row forged by someone holding YINGKE_SECRET (a valid seal over
  a false state) is refused before it is served, not only rows edited without the secret.
- Rows are keyed by the code fingerprint as well: two releases running at once (a
  rolling deploy) each read and write their own and never replace the other's.

Snapshots are derived data: deleting the table loses nothing but speed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import struct
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, NoReturn

from eventsourcing.persistence import StoredEvent
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

import domain
from domain.client import Client
from domain.custody import Ownership, Visit
from domain.disputes import DisputeState
from domain.ports import Folded
from domain.public_pool import LossRequest, PoolClaim
from domain.reports import ReportState
from domain.services.uow import UnitOfWork, fold
from yingke.chain import (
    CHAIN_TABLE,
    SNAPSHOT_TABLE,
    SQLITE_DDL,
    ChainBroken,
    ChainedSQLiteRecorder,
    _count_failure,
)
from yingke.state_codec import StateCodec, Undecodable, Unencodable

INTERVAL = 100  # versions between snapshots of one stream
RECHECK_SECONDS = 60.0  # how long a process trusts a prefix it re-read through the check
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEADER = struct.Struct(">16sQq")
# The first writer of a (stream, code, version) keeps it; another release writes rows of
# its own code beside it (ADR 0068).
_KEEP_FIRST = "ON CONFLICT (originator_id, code, originator_version) DO NOTHING"
# The aggregate snapshots hold, and the value classes its state is made of.
AGGREGATES = (Client,)
VALUES = (ReportState, Ownership, Visit, DisputeState, LossRequest, PoolClaim)
# How many snapshot versions a process remembers the fold of its events at.
VOUCHED_ROWS = 100_000


def _fingerprint() -> str:
    """The code a snapshot's state was folded and encoded by: the domain's modules, the
    library whose aggregate base holds part of the state, and the codec."""
    digest = hashlib.sha256(b"json-1|")
    digest.update(package_version("eventsourcing").encode())
    root = Path(domain.__file__).parent
    files = [(str(p.relative_to(root)), p) for p in sorted(root.rglob("*.py"))]
    files.append(("<codec>", Path(__file__).with_name("state_codec.py")))
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes())
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

    def __init__(
        self, uow: UnitOfWork, key: bytes, interval: int = INTERVAL, code: str = CODE
    ) -> None:
        self.uow = uow
        self.recorder: Any = uow.store.recorder
        self.mapper = uow.store.mapper
        self.codec = StateCodec(self.mapper.transcoder, AGGREGATES, VALUES)
        self.key = key
        self.interval = interval
        self.code = code  # another release's fingerprint in tests of rolling deploys
        self.sqlite = isinstance(self.recorder, ChainedSQLiteRecorder)
        self._checked: dict[uuid.UUID, tuple[int, float]] = {}  # stream → (version, when)
        # (stream, version) → SHA-256 of the state a fold of the events encodes to there.
        self._vouched: OrderedDict[tuple[uuid.UUID, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._present: bool | None = None  # the table exists (a store not yet migrated)
        self.taken = 0  # snapshots this process wrote (for tests and the bench)
        self.failures = 0  # snapshot writes that failed (the reads still answered)
        self.used = 0  # folds that started from a snapshot
        self.compared = 0  # rows compared with a fold of their events
        recorder: Any = uow.store.recorder
        events = recorder.events_table_name
        if self.sqlite:
            self._fold_sql: Any = _FOLD.format(
                snaps=SNAPSHOT_TABLE, chain=CHAIN_TABLE, events=events, position="rowid",
                null_text="NULL",
            )  # fmt: skip
            self._event_sql: Any = _EVENT.format(chain=CHAIN_TABLE, events=events, position="rowid")
        else:
            schema = recorder.datastore.schema
            typed = _FOLD.replace(":id", "%(id)s").replace(":code", "%(code)s")
            for name, kind in (("until", "bigint"), ("asof", "boolean"), ("max", "bigint"),
                               ("also", "bigint")):  # fmt: skip
                typed = typed.replace(f":{name}", f"%({name})s::{kind}")
            self._fold_sql = SQL(typed).format(
                snaps=Identifier(schema, SNAPSHOT_TABLE),
                chain=Identifier(schema, CHAIN_TABLE),
                events=Identifier(schema, events),
                position=SQL("notification_id"),
                null_text=SQL("NULL::text"),
            )
            self._event_sql = SQL(
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
            # Before the events after it change the state in place.
            self._recheck_prefix(stream, row, state)
        if read is None:
            stored = self.recorder.select_events(stream)
        else:
            # As ``select_events(gt=base, lte=the next snapshot)`` checks them, from the rows
            # this statement read (the chain from the snapshot's own entry up).
            stored = self.recorder._verified(
                stream, read.events, read.chain, gt=base or None, lte=None, desc=False, limit=None
            )
        events: list[Any] = []
        folded: list[Any] = []
        due: list[tuple[int, int, bytes]] = []  # (version, last_at, encoded state)
        for item in stored:
            event: Any = self.mapper.to_domain_event(item)
            events.append(event)
            if until is not None and micros(event.timestamp) > until:
                continue
            state = event.mutate(state)
            folded.append(event)
            if present and not whole and event.originator_version % self.interval == 0:
                encoded = self._encoded(stream, state)
                if encoded is not None:
                    due.append((event.originator_version, micros(event.timestamp), encoded))
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
        read = self._select(stream, self._event_sql, params)
        return self._extra(stream, [], read, version)

    def _select(self, stream: uuid.UUID, statement: Any, params: dict[str, Any]) -> _Read:
        """Run one of the fold statements (``_FOLD`` or ``_EVENT``, as built for this
        store's dialect) and sort its rows."""
        if self.sqlite:
            with self.recorder.datastore.transaction(commit=False) as c:
                c.execute(statement, params)
                found = c.fetchall()
        else:
            with (
                self.recorder.datastore.get_connection() as conn,
                conn.cursor(row_factory=tuple_row) as curs,
            ):
                curs.execute(statement, params, prepare=True)
                found = curs.fetchall()
        read = _Read()
        self._collect(stream, found, read)
        return read

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
            "code": self.code,
            # No snapshot was taken before the epoch: ``whole`` reads from the first event.
            "until": -1 if whole else until if until is not None else 2**62,
            "asof": until is not None,
            "max": 2**62,
            "also": also,
        }
        return self._select(stream, self._fold_sql, params)

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
        try:
            return self.codec.decode(row.state)
        except Undecodable as exc:
            # Sealed by our key yet not what this code writes: forged with the secret.
            self._broken(stream, row.version, f"snapshot does not decode: {exc}")

    def _recheck_prefix(self, stream: uuid.UUID, row: _Row, state: Any) -> None:
        """Re-read the events under a snapshot through the chain check, once per process
        and then every ``RECHECK_SECONDS``: an edit there is noticed, if not on every
        read, within that window. A row this process has not yet compared with a fold
        of those events is compared first: a valid seal over a false state (forged by
        someone holding the secret) is refused before it is ever served.

        The fold passes every earlier snapshot version on its way: what the state
        encodes to at each is remembered, so the rows there (as-of reads) are vouched
        for by their bytes, without a fold each (the encoding is canonical)."""
        version = row.version
        digest = hashlib.sha256(row.state).digest()
        now = time.monotonic()
        with self._lock:
            checked = self._checked.get(stream)
            vouched = self._vouched.get((stream, version)) == digest
        fresh = checked is not None and checked[0] >= version and now - checked[1] < RECHECK_SECONDS
        if fresh and vouched:
            return
        stored = self.recorder.select_events(stream, lte=version)  # raises ChainBroken
        expected = {version: digest}
        if not vouched:
            folded: Any = None
            for item in stored:
                event: Any = self.mapper.to_domain_event(item)
                folded = event.mutate(folded)
                passed = event.originator_version
                if passed % self.interval == 0 and passed < version:
                    with contextlib.suppress(Unencodable):
                        expected[passed] = hashlib.sha256(self.codec.encode(folded)).digest()
            self.compared += 1
            if not _same(folded, state):
                self._broken(stream, version, "snapshot does not match its events")
        with self._lock:
            self._checked[stream] = (version, now)
        self._vouch(stream, expected)

    def _vouch(self, stream: uuid.UUID, digests: dict[int, bytes]) -> None:
        with self._lock:
            for version, digest in digests.items():
                self._vouched[(stream, version)] = digest
                self._vouched.move_to_end((stream, version))
            while len(self._vouched) > VOUCHED_ROWS:
                self._vouched.popitem(last=False)

    def _broken(self, stream: uuid.UUID, version: int, reason: str) -> NoReturn:
        _count_failure()
        raise ChainBroken(str(stream), version, None, reason)

    # ------------------------------------------------------------------ writing

    def _encoded(self, stream: uuid.UUID, state: Any) -> bytes | None:
        """The state as stored, if it decodes to exactly the state folded: a value the
        codec does not know, or one that would come back different, means no snapshot
        (the read still answers; the stream is folded from an earlier one or whole)."""
        try:
            encoded = self.codec.encode(state)
            if _same(self.codec.decode(encoded), state):
                return encoded
            reason = "would not decode to the state folded"
        except (Unencodable, Undecodable) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        self.failures += 1
        logging.getLogger("yingke").warning("snapshot of %s not taken: %s", stream, reason)
        return None

    def _mac(
        self, stream: uuid.UUID, version: int, last_at: int, head: bytes, state: bytes
    ) -> bytes:
        message = _HEADER.pack(stream.bytes, version, last_at) + head + self.code.encode() + state
        # v2: JSON states. A v1 (pickle) row never verifies under this label.
        return hmac.new(self.key, b"yingke-snapshot-v2" + message, hashlib.sha256).digest()

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
                    + _KEEP_FIRST,
                    [(stream.hex, v, t, h, self.code, s, m) for v, t, h, s, m in rows],
                )
        else:
            schema = self.recorder.datastore.schema
            with self.recorder.datastore.transaction(commit=True) as curs:
                curs.executemany(
                    SQL(
                        "INSERT INTO {table} (originator_id, originator_version, last_at, "
                        "head_hash, code, state, mac) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                        + _KEEP_FIRST
                    ).format(table=Identifier(schema, SNAPSHOT_TABLE)),
                    [(stream, v, t, h, self.code, s, m) for v, t, h, s, m in rows],
                )
        self.taken += len(rows)
        # Folded from the events just now: no need to compare them when they are used.
        # (A row another writer got in first is kept; it is vouched for only if it is
        # byte for byte this one, which an honest writer's is: the encoding is canonical.)
        self._vouch(stream, {v: hashlib.sha256(s).digest() for v, _, _, s, _ in rows})

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


def _same(a: Any, b: Any) -> bool:
    """Two folds of a stream hold the same state (pending events aside)."""
    if type(a) is not type(b):
        return False
    skip = ("_pending_events",)
    return {k: v for k, v in vars(a).items() if k not in skip} == {
        k: v for k, v in vars(b).items() if k not in skip
    }


def migrate(recorder: Any, code: str = CODE) -> int:
    """Bring the snapshot table to this release (``yingke migrate``); the number of rows
    deleted.

    A table keyed by (stream, version) alone is from before ADR 0068: every row in it is
    a pickle, which this code never reads. Its rows are deleted and its key becomes
    (stream, code, version). Rows of code other than this release's are deleted too: a
    release still running during a rollout re-takes its own as it reads (and cannot
    displace these); without this, every release would leave its rows behind for good.
    """
    if isinstance(recorder, ChainedSQLiteRecorder):
        with recorder.datastore.transaction(commit=True) as c:
            c.execute(f"PRAGMA table_info({SNAPSHOT_TABLE})")
            keyed = {str(r[1]) for r in c.fetchall() if int(r[5]) > 0}
            if keyed and "code" not in keyed:
                c.execute(f"SELECT COUNT(*) FROM {SNAPSHOT_TABLE}")
                dropped = int(c.fetchone()[0])
                # SQLite cannot change a primary key: the table is made again (one
                # process owns an embedded store, so nobody reads it meanwhile).
                c.execute(f"DROP TABLE {SNAPSHOT_TABLE}")
                c.execute(next(s for s in SQLITE_DDL if SNAPSHOT_TABLE in s))
                return dropped
            c.execute(f"DELETE FROM {SNAPSHOT_TABLE} WHERE code <> ?", (code,))
            c.execute("SELECT changes()")
            return int(c.fetchone()[0])
    schema = recorder.datastore.schema
    table = Identifier(schema, SNAPSHOT_TABLE)
    with recorder.datastore.transaction(commit=True) as curs:
        curs.execute(
            "SELECT c.conname AS name, array_agg(a.attname::text) AS keyed FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
            "WHERE c.conrelid = to_regclass(%s) AND c.contype = 'p' GROUP BY c.conname",
            (f"{schema}.{SNAPSHOT_TABLE}",),
        )
        found = curs.fetchone()
        if found is not None and "code" not in found["keyed"]:
            # Altered in place, not dropped: servers of the previous release still running
            # keep reading the table (they find nothing of theirs and fold whole streams);
            # their writes, on the old key, fail and are logged (ADR 0060's failure path).
            curs.execute(SQL("DELETE FROM {}").format(table))
            dropped = int(curs.rowcount)
            curs.execute(
                SQL(
                    "ALTER TABLE {} DROP CONSTRAINT {}, ADD PRIMARY KEY "
                    "(originator_id, code, originator_version)"
                ).format(table, Identifier(found["name"]))
            )
            return dropped
        curs.execute(SQL("DELETE FROM {} WHERE code <> %s").format(table), (code,))
        return int(curs.rowcount)
