"""Integrity tests tamper with the store, so each gets a database of its own."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL, PG_SERVER_URL, PG_WAIT, TEST_ADMIN_KEY, TEST_SECRET
from tests.support import FakeClock
from yingke.bootstrap import Container, build, migrate
from yingke.settings import Settings, load_settings


@dataclass
class Store:
    backend: str
    settings: Settings
    container: Container
    sql: Callable[..., list[tuple[Any, ...]]]

    @property
    def events(self) -> str:
        return str(self.container.store.recorder.events_table_name)  # type: ignore[attr-defined]

    @property
    def position_column(self) -> str:
        return "rowid" if self.backend == "sqlite" else "notification_id"

    def stream_param(self, stream: uuid.UUID) -> Any:
        return stream.hex if self.backend == "sqlite" else stream


def _pg_database() -> Iterator[str]:
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        import os

        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable: {exc}")
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    name = f"yingke_integrity_{uuid.uuid4().hex}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{PG_SERVER_URL}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def own_pg_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for a migrated PostgreSQL database of the calling test's own: synthetic
    events written there decode in no other test's follower (the shared session database
    is read by every view)."""
    for url in _pg_database():
        settings = load_settings(
            {
                "YINGKE_DATA_DIR": str(tmp_path),
                "YINGKE_DATABASE_URL": url,
                "YINGKE_PG_CONNECT_TIMEOUT": PG_WAIT,
                "YINGKE_SECRET": TEST_SECRET,
                "YINGKE_ADMIN_KEY": TEST_ADMIN_KEY,
            }
        )
        migrate(settings)
        yield settings


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[Store]:
    env = {"YINGKE_DATA_DIR": str(tmp_path), "YINGKE_CHECKPOINT_EVERY": "5"}
    if backend == "sqlite":
        settings = load_settings(env)
        container = build(settings, clock=FakeClock())
        path = settings.sqlite_path

        def sql_sqlite(statement: str, *params: Any) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path) as conn:
                return list(conn.execute(statement, params).fetchall())

        yield Store(backend, settings, container, sql_sqlite)
        container.close()
        return
    for url in _pg_database():
        settings = load_settings(
            {
                **env,
                "YINGKE_DATABASE_URL": url,
                "YINGKE_PG_CONNECT_TIMEOUT": PG_WAIT,
                "YINGKE_SECRET": TEST_SECRET,
                "YINGKE_ADMIN_KEY": TEST_ADMIN_KEY,
                "YINGKE_KEK_RETIRE_DELAY": "0",
            }
        )
        migrate(settings)
        container = build(settings, clock=FakeClock())

        def sql_pg(statement: str, *params: Any, url: str = url) -> list[tuple[Any, ...]]:
            with psycopg.connect(url, autocommit=True) as conn:
                cur = conn.execute(statement.replace("?", "%s"), params)
                return list(cur.fetchall()) if cur.description else []

        yield Store(backend, settings, container, sql_pg)
        container.close()
