"""Checking pooled PostgreSQL connections only when they may have gone stale.

A pool that pings every connection it hands out (``ConnectionPool.check_connection``)
adds a round trip to every query: under load that was 17% of a report's wall time.
Connections die while they sit idle (a server restart, a proxy's idle timeout), not
while they are being used many times a second, so a connection handed out within the
last ``FRESH_SECONDS`` is trusted and only older ones are pinged. A connection that
broke in between fails its request, which the client retries with its Idempotency-Key
(the store guard already answers 503 for a store that is down).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

FRESH_SECONDS = 1.0

_handed_out: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """A pool ``check`` callback: ping only a connection unused for a while."""
    now = time.monotonic()
    with _lock:
        last = _handed_out.get(conn)
        _handed_out[conn] = now
    if last is not None and now - last < FRESH_SECONDS:
        return
    ConnectionPool.check_connection(conn)


def ping_only_idle(datastore: Any) -> None:
    """Give the pool of eventsourcing's PostgreSQL datastore the idle-only check.

    eventsourcing offers only "ping always" (``POSTGRES_PRE_PING``) or "never"; its pool
    is a psycopg_pool ``ConnectionPool`` that keeps the callback in ``_check``.
    """
    pool = getattr(datastore, "pool", None)
    if isinstance(pool, ConnectionPool) and getattr(pool, "_check", None) is not None:
        pool._check = check_if_idle
