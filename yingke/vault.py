"""Crypto-shredding vault: one AES-256-GCM key per subject, wrapped by a KEK epoch.

Subject keys live in their own table beside the event store, so erasing a person is one
DELETE and no event is rewritten. The key-encryption keys live outside the database
(yingke/keys.py) in epochs: an erasure is only final once every epoch that ever wrapped
the erased key is destroyed, because copies of the wrapped key survive the DELETE in
SQLite's WAL and PostgreSQL's dead tuples. So erasure retires the epochs: live keys are
re-wrapped under a new one and the old material is overwritten (ADR 0036).

Wrapped keys written before epochs existed are "epoch 0", wrapped by a key derived from
YINGKE_SECRET; `yingke migrate` re-wraps them and compacts the table.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg_pool import ConnectionPool

from yingke.keys import KekFile, KeyDir
from yingke.pools import check_if_idle

MAGIC = b"YKE1"

TABLE = "yingke_personal_data_keys"
SELECT_KEY_PG = f"SELECT wrapped FROM {TABLE} WHERE subject = %s"
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS {table} (subject TEXT PRIMARY KEY, wrapped {blob} NOT NULL)"
)


@dataclass(frozen=True)
class NewKey:
    """A subject key created inside a unit of work, stored with the unit's events.

    ``raw`` stays in memory until the save committed: a KEK rotation that destroyed
    ``wrapped``'s epoch meanwhile may have missed the row, and it is re-wrapped from it.
    ``kek_file``: the KEK file ``wrapped`` was made with, to tell after the commit (None:
    unknown, so the key is re-wrapped).
    """

    subject: str
    wrapped: bytes
    raw: bytes
    cipher: AESGCM = field(compare=False, repr=False)
    kek_file: KekFile | None = field(default=None, compare=False, repr=False)


class _Kek(NamedTuple):
    """A KEK epoch as read, with the identity of the file it was read from."""

    epoch: int
    kek: AESGCM
    file: KekFile


@dataclass(frozen=True)
class _CurrentKek:
    """The newest KEK epoch as listed at ``loaded``, valid while the key directory's
    mtime is ``stamp`` (None: listed too soon after a change to trust it)."""

    stamp: int | None
    loaded: float
    epoch: int
    kek: AESGCM
    file: KekFile


# How long the current KEK may be used from memory without listing the directory again,
# even when its mtime says nothing changed (a directory on another host's clock).
KEK_CACHE_SECONDS = 1.0
# A listing is trusted only once the directory's last change is this much older: a
# change in the same timestamp tick as the listing would leave the mtime unchanged.
_RACY_NS = 50_000_000


class KeyStore:
    def create_table(self) -> None:
        raise NotImplementedError

    def get(self, subject: str) -> bytes | None:
        raise NotImplementedError

    def put_if_absent(self, subject: str, wrapped: bytes) -> bytes:
        """Store ``wrapped`` unless a key exists; return whichever key is stored."""
        raise NotImplementedError

    def delete(self, subject: str) -> None:
        raise NotImplementedError

    def rows(self) -> list[tuple[str, bytes]]:
        raise NotImplementedError

    def replace(self, subject: str, old: bytes, new: bytes) -> bool:
        """Compare-and-set: a concurrent erasure or re-wrap wins."""
        raise NotImplementedError

    def compact(self, full: bool = False) -> None:
        """Leave no old copy of a key in the database's files where the engine allows it.

        ``full`` also rewrites the table; needed only for epoch-0 copies, whose KEK
        derives from YINGKE_SECRET and so cannot be destroyed.
        """

    def put_many_if_absent(self, wrapped: dict[str, bytes]) -> dict[str, bytes]:
        """As ``put_if_absent`` for many subjects in one transaction (an import seals
        thousands of new buyers: one commit per key would dominate it)."""
        raise NotImplementedError


class SQLiteKeyStore(KeyStore):
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # Deleted rows are overwritten with zeros in the page, not just unlinked.
        self._conn.execute("PRAGMA secure_delete=ON")
        self._lock = threading.Lock()

    def create_table(self) -> None:
        with self._lock, self._conn:
            self._conn.execute(CREATE_TABLE.format(table=TABLE, blob="BLOB"))

    def get(self, subject: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT wrapped FROM {TABLE} WHERE subject = ?", (subject,)
            ).fetchone()
        return bytes(row[0]) if row else None

    def put_if_absent(self, subject: str, wrapped: bytes) -> bytes:
        with self._lock, self._conn:
            self._conn.execute(
                f"INSERT INTO {TABLE} (subject, wrapped) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (subject, wrapped),
            )
            row = self._conn.execute(
                f"SELECT wrapped FROM {TABLE} WHERE subject = ?", (subject,)
            ).fetchone()
        assert row is not None
        return bytes(row[0])

    def delete(self, subject: str) -> None:
        with self._lock, self._conn:
            self._conn.execute(f"DELETE FROM {TABLE} WHERE subject = ?", (subject,))

    def rows(self) -> list[tuple[str, bytes]]:
        with self._lock:
            found = self._conn.execute(f"SELECT subject, wrapped FROM {TABLE}").fetchall()
        return [(str(r[0]), bytes(r[1])) for r in found]

    def replace(self, subject: str, old: bytes, new: bytes) -> bool:
        with self._lock, self._conn:
            cur = self._conn.execute(
                f"UPDATE {TABLE} SET wrapped = ? WHERE subject = ? AND wrapped = ?",
                (new, subject, old),
            )
            return cur.rowcount == 1

    def compact(self, full: bool = False) -> None:
        if full:
            with self._lock:
                self._conn.execute("VACUUM")
        # Copy every page into the main file, then cut the WAL to zero bytes so old
        # frames holding deleted or re-wrapped keys are gone; readers may delay it.
        for _ in range(50):
            with self._lock:
                busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            time.sleep(0.05)

    def put_many_if_absent(self, wrapped: dict[str, bytes]) -> dict[str, bytes]:
        with self._lock, self._conn:
            self._conn.executemany(
                f"INSERT INTO {TABLE} (subject, wrapped) VALUES (?, ?) ON CONFLICT DO NOTHING",
                list(wrapped.items()),
            )
            return {
                subject: bytes(
                    self._conn.execute(
                        f"SELECT wrapped FROM {TABLE} WHERE subject = ?", (subject,)
                    ).fetchone()[0]
                )
                for subject in wrapped
            }

    def close(self) -> None:
        self._conn.close()


class PostgresKeyStore(KeyStore):
    def __init__(self, conninfo: str, max_size: int = 10, timeout: float = 5) -> None:
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            open=True,
            timeout=timeout,
            kwargs={"autocommit": True},
            # After an outage, pooled connections are dead: test them before use.
            check=check_if_idle,
        )

    def create_table(self) -> None:
        with self._pool.connection() as conn:
            conn.execute(CREATE_TABLE.format(table=TABLE, blob="BYTEA"))

    def get(self, subject: str) -> bytes | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT wrapped FROM {TABLE} WHERE subject = %s", (subject,)
            ).fetchone()
        return bytes(row[0]) if row else None

    def put_if_absent(self, subject: str, wrapped: bytes) -> bytes:
        with self._pool.connection() as conn:
            # One round trip: the row this statement inserted, or the one already there.
            row = conn.execute(
                f"WITH ins AS (INSERT INTO {TABLE} (subject, wrapped) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING RETURNING wrapped) "
                f"SELECT wrapped FROM ins UNION ALL SELECT wrapped FROM {TABLE} WHERE subject = %s",
                (subject, wrapped, subject),
            ).fetchone()
            if row is None:
                # The row that conflicted committed after this statement's snapshot.
                row = conn.execute(
                    f"SELECT wrapped FROM {TABLE} WHERE subject = %s", (subject,)
                ).fetchone()
        assert row is not None
        return bytes(row[0])

    def delete(self, subject: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(f"DELETE FROM {TABLE} WHERE subject = %s", (subject,))

    def rows(self) -> list[tuple[str, bytes]]:
        with self._pool.connection() as conn:
            found = conn.execute(f"SELECT subject, wrapped FROM {TABLE}").fetchall()
        return [(str(r[0]), bytes(r[1])) for r in found]

    def replace(self, subject: str, old: bytes, new: bytes) -> bool:
        with self._pool.connection() as conn:
            cur = conn.execute(
                f"UPDATE {TABLE} SET wrapped = %s WHERE subject = %s AND wrapped = %s",
                (new, subject, old),
            )
            return cur.rowcount == 1

    def compact(self, full: bool = False) -> None:
        # Dead tuples are harmless once their epoch is destroyed. Epoch-0 copies (their
        # KEK derives from YINGKE_SECRET) must leave the pages: VACUUM FULL keeps tuples
        # any running transaction might still see, so copy the live rows into a fresh
        # table and drop the old one, whose files go at commit.
        if not full:
            return
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}_fresh")
            conn.execute(f"CREATE TABLE {TABLE}_fresh (LIKE {TABLE} INCLUDING ALL)")
            conn.execute(f"INSERT INTO {TABLE}_fresh SELECT * FROM {TABLE}")
            conn.execute(f"DROP TABLE {TABLE}")
            conn.execute(f"ALTER TABLE {TABLE}_fresh RENAME TO {TABLE}")

    def put_many_if_absent(self, wrapped: dict[str, bytes]) -> dict[str, bytes]:
        subjects = list(wrapped)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {TABLE} (subject, wrapped) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                list(wrapped.items()),
            )
            cur.execute(
                f"SELECT subject, wrapped FROM {TABLE} WHERE subject = ANY(%s)", (subjects,)
            )
            return {str(subject): bytes(key) for subject, key in cur.fetchall()}

    def close(self) -> None:
        self._pool.close()


class Vault:
    """Implements domain.ports.PersonalDataVault."""

    def __init__(
        self, store: KeyStore, secret: bytes, keys: KeyDir, retire_delay: float = 0.0
    ) -> None:
        self._store = store
        self._keys = keys
        self.retire_delay = retire_delay
        self._rotation = threading.Lock()
        legacy = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"yingke-vault", info=b"master-key"
        ).derive(secret)
        self._legacy = AESGCM(legacy)
        # Set by the composition root when the event store writes a unit's new keys in
        # the transaction of its events (PostgreSQL group commit, ADR 0065).
        self.defer_new_keys = False
        self._unit = threading.local()
        self._current: _CurrentKek | None = None

    # ------------------------------------------------ keys stored with events

    @contextmanager
    def unit(self) -> Iterator[None]:
        """One attempt of a unit of work: keys created inside it are not stored at once
        but handed to the save (``take_new_keys``), so a key commits with the events
        sealed under it and a refused save leaves none behind."""
        if not self.defer_new_keys:
            yield
            return
        self._unit.keys = {}
        self._unit.seen = {}
        try:
            yield
        finally:
            self._unit.keys = None
            self._unit.seen = {}

    def take_new_keys(self) -> list[NewKey]:
        """The keys this thread's unit of work created, for its save; taken once."""
        keys: dict[str, NewKey] | None = getattr(self._unit, "keys", None)
        if not keys:
            return []
        self._unit.keys = {}
        return list(keys.values())

    def keys_refused(self, keys: Sequence[NewKey]) -> None:
        """The save carrying ``keys`` was refused: the next attempt on this thread looks
        for these subjects' keys before creating one (one may be stored)."""
        look_first: set[str] = self._unit.__dict__.setdefault("look_first", set())
        look_first.update(k.subject for k in keys)

    def keys_stored(self, keys: Sequence[NewKey]) -> None:
        """After the save that stored ``keys`` committed: a rotation that destroyed
        their epoch meanwhile may have missed the rows, so re-wrap them ourselves (as
        ``_subject_key`` does after its own insert)."""
        self._unit.__dict__.pop("look_first", None)
        for key in keys:
            if not self._kek_unchanged(self.epoch_of(key.wrapped), key.kek_file):
                self._store.replace(key.subject, key.wrapped, self._wrap(key.subject, key.raw))

    def store_new_keys(self, keys: Sequence[NewKey]) -> bool:
        """Store ``keys`` now, each unless its subject has one; False if any had
        (the save must then be decided again: its tokens are sealed under the new key).
        For a save that does not go through the group-commit writer."""
        return all(self._store.put_if_absent(k.subject, k.wrapped) == k.wrapped for k in keys)

    # ------------------------------------------------------------- wrapping

    def _kek(self, epoch: int, held: dict[int, bytes] | None = None) -> AESGCM | None:
        if epoch == 0:
            return self._legacy
        material = (held or {}).get(epoch) or self._keys.kek(epoch)
        return AESGCM(material) if material else None

    def _current_kek(self) -> _CurrentKek | None:
        """The newest epoch and its KEK, from memory while the key directory is unchanged.

        Reading the directory and the KEK file on every new key was ~9% of a report's CPU
        (issue 15). Only a new key is wrapped with it, and whoever stores one checks after
        the insert that its epoch's file is still the one read (``_kek_unchanged``: a
        rotation may have destroyed it), so a stale answer here costs a re-wrap, never a
        key.
        """
        now = time.monotonic()
        try:
            stamp: int | None = os.stat(self._keys.path).st_mtime_ns
        except OSError:
            stamp = None
        cached = self._current
        if (
            cached is not None
            and stamp is not None
            and cached.stamp == stamp
            and now - cached.loaded < KEK_CACHE_SECONDS
        ):
            return cached
        listed_at = time.time_ns()
        epoch = self._keys.current_epoch()
        found = self._keys.read_kek(epoch)
        if found is None:
            self._current = None
            return None
        trusted = stamp if stamp is not None and listed_at - stamp > _RACY_NS else None
        self._current = _CurrentKek(trusted, now, epoch, AESGCM(found[0]), found[1])
        return self._current

    def _newest_kek(self) -> _Kek:
        """The newest epoch, read from the key directory now (a re-wrap, an import)."""
        deadline = time.monotonic() + 10
        while True:
            epoch = self._keys.current_epoch()
            found = self._keys.read_kek(epoch)
            if found is not None:
                return _Kek(epoch, AESGCM(found[0]), found[1])
            if time.monotonic() > deadline:
                raise RuntimeError(f"KEK epoch {epoch} is listed but cannot be read")
            # A rotation (perhaps in another process) destroyed this epoch between
            # listing it and reading it, or its new file is still being written: the
            # next listing names the epoch that replaced it.
            time.sleep(0.005)

    def _new_key_kek(self) -> _Kek:
        """The KEK for a key about to be stored and checked after (``_kek_unchanged``):
        from memory when it may be (``_current_kek``)."""
        cached = self._current_kek()
        if cached is None:
            return self._newest_kek()
        return _Kek(cached.epoch, cached.kek, cached.file)

    def _kek_unchanged(self, epoch: int, file: KekFile | None) -> bool:
        """After a new key wrapped by ``epoch`` from ``file`` was stored: whether that
        file is still the epoch's. If not, a rotation may have missed the row (the caller
        re-wraps it), and the KEK in memory is stale."""
        if file is not None and self._keys.kek_unchanged(epoch, file):
            return True
        cached = self._current
        if cached is not None and cached.epoch == epoch:
            self._current = None
        return False

    def _wrap(self, name: str, raw: bytes, current: tuple[int, AESGCM] | None = None) -> bytes:
        """``current``: the epoch and KEK to wrap with; without it the key directory is
        read (a re-wrap)."""
        if current is None:
            newest = self._newest_kek()
            current = (newest.epoch, newest.kek)
        epoch, kek = current
        nonce = os.urandom(12)
        head = MAGIC + struct.pack(">I", epoch)
        return head + nonce + kek.encrypt(nonce, raw, head + name.encode())

    @staticmethod
    def epoch_of(wrapped: bytes) -> int:
        return struct.unpack(">I", wrapped[4:8])[0] if wrapped[:4] == MAGIC else 0

    def _unwrap(self, name: str, wrapped: bytes, held: dict[int, bytes] | None = None) -> bytes:
        epoch = self.epoch_of(wrapped)
        cached = self._current_kek() if held is None and epoch != 0 else None
        # A stored row wrapped by the current epoch: its KEK from memory.
        kek = cached.kek if cached is not None and cached.epoch == epoch else self._kek(epoch, held)
        if kek is None:
            raise KeyError(epoch)
        if epoch == 0:
            return kek.decrypt(wrapped[:12], wrapped[12:], name.encode())
        head = wrapped[:8]
        return kek.decrypt(wrapped[8:20], wrapped[20:], head + name.encode())

    def _subject_key(self, subject: uuid.UUID, create: bool, new: bool = False) -> AESGCM | None:
        name = str(subject)
        pending: dict[str, NewKey] | None = getattr(self._unit, "keys", None)
        if pending is not None:
            return self._unit_key(name, create, pending, new)
        for _ in range(100):
            # Creating: offer a new key straight away; the one statement stores it or
            # answers the key already stored (one round trip instead of a read first).
            wrapped = None if create else self._store.get(name)
            if wrapped is None:
                if not create:
                    return None
                raw = AESGCM.generate_key(256)
                kek = self._new_key_kek()
                mine = self._wrap(name, raw, (kek.epoch, kek.kek))
                wrapped = self._store.put_if_absent(name, mine)
                if wrapped == mine and not self._kek_unchanged(kek.epoch, kek.file):
                    # A rotation destroyed the epoch while this key was being stored;
                    # its scan may have missed the row, so re-wrap it ourselves.
                    self._store.replace(name, mine, self._wrap(name, raw))
                    continue
            try:
                return AESGCM(self._unwrap(name, wrapped))
            except KeyError:
                time.sleep(0.01)  # a rotation is re-wrapping this row right now
        raise RuntimeError("subject key stays wrapped by a destroyed KEK epoch")

    def _unit_key(
        self, name: str, create: bool, pending: dict[str, NewKey], new: bool
    ) -> AESGCM | None:
        """Inside a unit of work: the key created earlier in it, the stored one, or (when
        creating) a new one that the unit's save stores with its events. If a key gets
        stored meanwhile, the save is refused and the unit decides again with it.

        ``new``: the caller found no stream for this subject, so it is not looked up
        (one round trip less per new buyer); should it have a key after all, the save
        is refused, and the attempt after looks first (``keys_refused``).
        """
        if name in pending:
            return pending[name].cipher
        if name in self._unit.__dict__.get("seen", ()):
            return self._unit.seen[name]  # type: ignore[no-any-return]
        look_first: set[str] = self._unit.__dict__.setdefault("look_first", set())
        for _ in range(100):
            wrapped = None if create and new and name not in look_first else self._store.get(name)
            if wrapped is None:
                if not create:
                    return None
                raw = AESGCM.generate_key(256)
                kek = self._new_key_kek()
                wrapped = self._wrap(name, raw, (kek.epoch, kek.kek))
                created = NewKey(name, wrapped, raw, AESGCM(raw), kek.file)
                pending[name] = created
                return created.cipher
            try:
                found = AESGCM(self._unwrap(name, wrapped))
            except KeyError:
                time.sleep(0.01)  # a rotation is re-wrapping this row right now
                continue
            # Read once per attempt: a command that seals twice for a buyer reads once.
            seen: dict[str, AESGCM] = self._unit.__dict__.setdefault("seen", {})
            seen[name] = found
            return found
        raise RuntimeError("subject key stays wrapped by a destroyed KEK epoch")

    @staticmethod
    def _seal_with(key: AESGCM, subject: uuid.UUID, data: dict[str, str]) -> str:
        nonce = os.urandom(12)
        sealed = nonce + key.encrypt(nonce, json.dumps(data).encode(), subject.bytes)
        return "v1:" + base64.b64encode(sealed).decode()

    def seal(self, subject: uuid.UUID, data: dict[str, str], *, new: bool = False) -> str:
        key = self._subject_key(subject, create=True, new=new)
        assert key is not None
        return self._seal_with(key, subject, data)

    def seal_new(self, items: list[tuple[uuid.UUID, dict[str, str]]]) -> list[str]:
        """Seal for subjects that are new: their keys are created together, in one
        transaction (a subject that has a key already keeps it)."""
        names = {str(subject) for subject, _ in items}
        raws = {n: AESGCM.generate_key(256) for n in names}
        kek = self._newest_kek()
        fresh = {n: self._wrap(n, raws[n], (kek.epoch, kek.kek)) for n in names}
        stored = self._store.put_many_if_absent(fresh)
        # Checked once, after every key is stored: the epoch is the same for the batch.
        destroyed = not self._kek_unchanged(kek.epoch, kek.file)
        keys: dict[str, AESGCM] = {}
        for name in names:
            if stored[name] == fresh[name]:
                if destroyed:
                    # A rotation destroyed the epoch while these keys were stored; its
                    # scan may have missed them, so re-wrap under the current epoch.
                    self._store.replace(name, fresh[name], self._wrap(name, raws[name]))
                keys[name] = AESGCM(raws[name])
            else:
                key = self._subject_key(uuid.UUID(name), create=True)
                assert key is not None
                keys[name] = key
        return [self._seal_with(keys[str(subject)], subject, data) for subject, data in items]

    def open(self, subject: uuid.UUID, token: str) -> dict[str, str] | None:
        if not token.startswith("v1:"):
            return None
        key = self._subject_key(subject, create=False)
        if key is None:
            return None
        raw = base64.b64decode(token[3:])
        try:
            opened: dict[str, Any] = json.loads(key.decrypt(raw[:12], raw[12:], subject.bytes))
        except InvalidTag:
            return None  # sealed under a key that was destroyed and later re-created
        return {str(k): str(v) for k, v in opened.items()}

    # ---------------------------------------------------- erasure and rotation

    def erase(self, subject: uuid.UUID) -> None:
        self._store.delete(str(subject))
        if self.retire_delay <= 0:
            self.rotate()
        else:
            self._keys.schedule_retirement(time.time() + self.retire_delay)

    def migrate_legacy(self) -> int:
        """Re-wrap keys written before KEK epochs (``yingke migrate``); returns how many."""
        legacy = [name for name, wrapped in self._store.rows() if self.epoch_of(wrapped) == 0]
        if legacy:
            self.rotate()
            self._store.compact(full=True)
        return len(legacy)

    def sweep(self) -> bool:
        """Run a scheduled retirement when it is due (scaled topology); True if it ran."""
        due = self._keys.retirement_due()
        if due is None or due > time.time():
            return False
        self.rotate()
        return True

    def rotate(self) -> int:
        """New KEK epoch; re-wrap every live key; destroy every older epoch. Returns it.

        Safe with other processes running: the old material is held in memory and its
        files destroyed first, then rows are re-wrapped until none is left; a writer that
        stored a key under an epoch destroyed meanwhile re-wraps it itself.
        """
        with self._rotation:
            old = [e for e in self._keys.epochs()]
            epoch = self._keys.new_epoch()
            held = {e: m for e in old if e != epoch and (m := self._keys.kek(e)) is not None}
            self._keys.clear_retirement()
            for e in held:
                self._keys.destroy_epoch(e)
            for settle in range(3):
                moved = 0
                for name, wrapped in self._store.rows():
                    if self.epoch_of(wrapped) == epoch:
                        continue
                    try:
                        raw = self._unwrap(name, wrapped, held)
                    except (KeyError, InvalidTag):
                        continue  # wrapped by an epoch destroyed before: unreadable anyway
                    self._store.replace(name, wrapped, self._wrap(name, raw))
                    moved += 1
                if moved == 0 and settle > 0:
                    break
                time.sleep(0.05)
            held.clear()
            self._store.compact()
            return epoch
