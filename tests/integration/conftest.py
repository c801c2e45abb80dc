"""Fixtures of the integration tests that need a PostgreSQL database of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integrity.conftest import own_pg_settings
from yingke.bootstrap import Container, build
from yingke.settings import Settings


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[Settings]:
    """A migrated database of this test's own: synthetic events written there decode in
    no other test's follower (the shared session database is read by every view)."""
    yield from own_pg_settings(tmp_path)


@pytest.fixture
def own_pg_app(own_pg: Settings) -> Iterator[Container]:
    container = build(own_pg)
    yield container
    container.close()
