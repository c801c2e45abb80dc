"""Crypto-shredding vault: one AES-256-GCM key per subject, wrapped by a master key.

The master key is derived from YINGKE_SECRET; subject keys live in their own table
beside the event store, so erasing a person is one DELETE and no event is rewritten.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg_pool import ConnectionPool

TABLE = "yingke_personal_data_keys"
SELECT_KEY_PG = f"SELECT wrapped FROM {TABLE} WHERE subject = %s"
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS {table} (subject TEXT PRIMARY KEY, wrapped {blob} NOT NULL)"
)


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

    def put_many_if_absent(self, wrapped: dict[str, bytes]) -> dict[str, bytes]:
        """As ``put_if_absent`` for many subjects in one transaction (an import seals
        thousands of new buyers: one commit per key would dominate it)."""
        raise NotImplementedError


class SQLiteKeyStore(KeyStore):
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
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
            conn.execute(
                f"INSERT INTO {TABLE} (subject, wrapped) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (subject, wrapped),
            )
            row = conn.execute(
                f"SELECT wrapped FROM {TABLE} WHERE subject = %s", (subject,)
            ).fetchone()
        assert row is not None
        return bytes(row[0])

    def delete(self, subject: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(f"DELETE FROM {TABLE} WHERE subject = %s", (subject,))

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

    def __init__(self, store: KeyStore, secret: bytes) -> None:
        self._store = store
        master = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"yingke-vault", info=b"master-key"
        ).derive(secret)
        self._master = AESGCM(master)

    def _subject_key(self, subject: uuid.UUID, create: bool) -> AESGCM | None:
        name = str(subject)
        wrapped = self._store.get(name)
        if wrapped is None:
            if not create:
                return None
            nonce = os.urandom(12)
            fresh = nonce + self._master.encrypt(nonce, AESGCM.generate_key(256), name.encode())
            wrapped = self._store.put_if_absent(name, fresh)
        raw = self._master.decrypt(wrapped[:12], wrapped[12:], name.encode())
        return AESGCM(raw)

    def _unwrap(self, name: str, wrapped: bytes) -> AESGCM:
        return AESGCM(self._master.decrypt(wrapped[:12], wrapped[12:], name.encode()))

    def _fresh_key(self, name: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._master.encrypt(nonce, AESGCM.generate_key(256), name.encode())

    @staticmethod
    def _seal_with(key: AESGCM, subject: uuid.UUID, data: dict[str, str]) -> str:
        nonce = os.urandom(12)
        sealed = nonce + key.encrypt(nonce, json.dumps(data).encode(), subject.bytes)
        return "v1:" + base64.b64encode(sealed).decode()

    def seal(self, subject: uuid.UUID, data: dict[str, str]) -> str:
        key = self._subject_key(subject, create=True)
        assert key is not None
        return self._seal_with(key, subject, data)

    def seal_new(self, items: list[tuple[uuid.UUID, dict[str, str]]]) -> list[str]:
        """Seal for subjects that are new: their keys are created together, in one
        transaction (a subject that has a key already keeps it)."""
        names = {str(subject) for subject, _ in items}
        stored = self._store.put_many_if_absent({n: self._fresh_key(n) for n in names})
        keys = {name: self._unwrap(name, wrapped) for name, wrapped in stored.items()}
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

    def erase(self, subject: uuid.UUID) -> None:
        self._store.delete(str(subject))
