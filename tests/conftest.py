"""Shared fixtures: a fake clock, SQLite and PostgreSQL settings, containers per backend.

All PostgreSQL tests of a session share one fresh database, created here and dropped at
the end; tests keep out of each other's way by using unique project and principal ids.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from domain.ports import Clock
from tests import ci_guard
from tests.support import FakeClock, register_consultant, unique
from yingke.bootstrap import Container, build, migrate
from yingke.settings import Settings, load_settings

IN_CI = os.environ.get("CI") == "true"

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_SERVER_URL = "postgresql://postgres@127.0.0.1:5432"
# How long a test's store waits for a pooled connection (YINGKE_PG_CONNECT_TIMEOUT). The
# service's 1 s default is for failing fast in production; on a two-core CI box busy with
# other suites, opening a backend has taken longer, and a test must not fail for that.
# The outage tests set their own, short, timeouts.
PG_WAIT = "10"
TEST_SECRET = "test-secret-0123456789abcdef"
TEST_ADMIN_KEY = "test-admin-key-0123456789"

ContainerFactory = Callable[..., Container]


def pytest_configure(config: pytest.Config) -> None:
    ci_guard.install(config)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def project_id() -> str:
    """A fresh project id: PostgreSQL tests share one database."""
    return unique("proj")


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return load_settings({"YINGKE_DATA_DIR": str(tmp_path)})


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database on the local PostgreSQL 15, dropped at session end."""
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"yingke_test_{uuid.uuid4().hex}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{PG_SERVER_URL}/{name}"
        try:
            migrate(_pg_settings(url, tmp_path_factory.mktemp("pg-data")))
            yield url
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_settings(url: str, data_dir: Path) -> Settings:
    return load_settings(
        {
            "YINGKE_DATABASE_URL": url,
            "YINGKE_PG_CONNECT_TIMEOUT": PG_WAIT,
            "YINGKE_DATA_DIR": str(data_dir),
            "YINGKE_SECRET": TEST_SECRET,
            "YINGKE_ADMIN_KEY": TEST_ADMIN_KEY,
            "YINGKE_PG_POOL_SIZE": "12",
        }
    )


@pytest.fixture
def pg_settings(pg_url: str, tmp_path: Path) -> Settings:
    return _pg_settings(pg_url, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    """Settings for the backend under test; PostgreSQL is only touched when asked for."""
    fixture = "sqlite_settings" if backend == "sqlite" else "pg_settings"
    value: Settings = request.getfixturevalue(fixture)
    return value


@pytest.fixture
def container(settings: Settings) -> Iterator[ContainerFactory]:
    """Build containers (closed after the test): ``container(clock=...)``."""
    built: list[Container] = []

    def make(clock: Clock | None = None) -> Container:
        made = build(settings, clock=clock)
        built.append(made)
        return made

    yield make
    for made in reversed(built):
        made.close()


@pytest.fixture
def app(container: ContainerFactory, clock: FakeClock) -> Container:
    """The application on the parametrised backend, driven by the fake clock."""
    return container(clock=clock)


@pytest.fixture
def consultant(app: Container, project_id: str) -> str:
    """An active consultant of ``project_id``: visits need one."""
    return register_consultant(app, project_id)
