"""The store guard's probe: a server that refuses new connections while the open ones
work is saturated, not down; a broken or hanging probe connection is replaced."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from yingke import bootstrap
from yingke.bootstrap import store_probe
from yingke.guard import StoreGuard, StoreProbe
from yingke.settings import Settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Counts new connections; ``refuse`` makes the server "full" for new ones."""
    state: dict[str, Any] = {"count": 0, "refuse": False}
    real = psycopg.connect

    def connect(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
        state["count"] += 1
        if state["refuse"]:
            raise psycopg.OperationalError(
                'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
                "FATAL:  sorry, too many clients already"
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", connect)
    return state


@pytest.fixture
def probe(pg_settings: Settings) -> Any:
    made = store_probe(pg_settings)
    yield made
    made.close()


def test_probes_reuse_one_connection(probe: StoreProbe, connects: dict[str, Any]) -> None:
    for _ in range(5):
        probe()
    assert connects["count"] == 1


def test_a_server_refusing_new_connections_is_not_reported_down(
    probe: StoreProbe, connects: dict[str, Any]
) -> None:
    guard = StoreGuard(probe)
    assert guard.check(5.0)
    connects["refuse"] = True  # other processes took every connection slot
    assert guard.check(5.0)
    assert guard.available


def test_a_broken_probe_connection_is_replaced(
    probe: StoreProbe, connects: dict[str, Any], pg_settings: Settings
) -> None:
    probe()
    kept = probe._conn
    assert kept is not None
    with psycopg.connect(bootstrap.conninfo(pg_settings), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (kept.info.backend_pid,))
    probe()
    assert connects["count"] == 3  # the first, the admin's, the replacement
    assert probe._conn is not kept


def test_a_store_gone_for_good_fails_the_probe(
    probe: StoreProbe, connects: dict[str, Any], pg_settings: Settings
) -> None:
    probe()
    kept = probe._conn
    assert kept is not None
    with psycopg.connect(bootstrap.conninfo(pg_settings), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (kept.info.backend_pid,))
    connects["refuse"] = True
    with pytest.raises(psycopg.OperationalError):
        probe()


def test_a_probe_hanging_on_the_kept_connection_does_not_block_the_next(
    probe: StoreProbe, connects: dict[str, Any]
) -> None:
    probe()
    hanging = threading.Lock()
    hanging.acquire()
    probe._lock, held = hanging, probe._lock  # as if an earlier probe never returned
    try:
        probe()
        assert connects["count"] == 2  # answered on a fresh connection
    finally:
        probe._lock = held
        hanging.release()
