"""A circuit breaker in front of the event store (ADR 0031).

When PostgreSQL goes away, a request that reaches it waits for the pool and fails; every
request after it would do the same. The guard keeps one answer instead: a monitor thread
probes the store with a bounded, fresh connection (every second while it answers, every
half second while it does not), and while the last probe failed the API answers 503 at
once without touching the store. A request that meets a store error wakes the monitor,
so an outage is noticed at the next probe rather than the next tick.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.utils import retry
from psycopg_pool import PoolTimeout

log = logging.getLogger("yingke.store")


# What a store that is down raises, through eventsourcing, psycopg or its pool.
STORE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    PoolTimeout,
)


class StoreUnavailable(Exception):
    """The guard knows the store is down: answered 503 without trying it."""


class StoreGuard:
    def __init__(
        self,
        probe: Callable[[], None],
        *,
        up_interval: float = 1.0,
        down_interval: float = 0.5,
        probe_timeout: float = 1.0,
        available: bool = True,
    ) -> None:
        self._probe = probe
        self._up_interval = up_interval
        self._down_interval = down_interval
        self._probe_timeout = probe_timeout
        self._available = available
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self._available

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-guard", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stopped.set()
        self._wake.set()
        if wait and self._thread is not None:
            self._thread.join(timeout=self._probe_timeout + 1)
        close = getattr(self._probe, "close", None)
        if close is not None:
            close()  # a probe's kept connection

    def suspect(self) -> None:
        """A request met a store error: probe now rather than at the next tick."""
        self._wake.set()

    def check(self, timeout: float) -> bool:
        """Probe now, within ``timeout`` seconds (for /readyz); a failure opens the guard."""
        if not self._available:
            return False
        if self._bounded_probe(timeout) is None:
            return True
        self._mark(False, "the readiness probe failed")
        return False

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._up_interval if self._available else self._down_interval)
            self._wake.clear()
            if self._stopped.is_set():
                return
            failure = self._bounded_probe(self._probe_timeout)
            self._mark(failure is None, failure or "")

    def _mark(self, available: bool, reason: str) -> None:
        if available and not self._available:
            log.warning("event store is reachable again; serving requests")
        elif not available and self._available:
            log.error("event store unreachable (%s); answering 503 until it is back", reason)
        self._available = available

    def _bounded_probe(self, timeout: float) -> str | None:
        """None when the probe succeeded within ``timeout``, else why not.

        The probe runs in its own thread so that a store that hangs (a dropped network
        rather than a refused connection) costs the caller ``timeout``, not the driver's
        own connect timeout; the thread ends by itself when the driver gives up.
        """
        outcome: list[str | None] = []

        def attempt() -> None:
            try:
                self._probe()
                outcome.append(None)
            except Exception as exc:
                outcome.append(f"{type(exc).__name__}: {exc}".strip()[:200])

        thread = threading.Thread(target=attempt, name="store-probe", daemon=True)
        thread.start()
        thread.join(timeout)
        if not outcome:
            return f"no answer within {timeout:.1f}s"
        return outcome[0]


def drop_retries(recorder: Any) -> None:
    """Call the recorder's methods without eventsourcing's built-in retry loop.

    eventsourcing retries each PostgreSQL call ten times on a connection error, so a
    request to a store that is down waits ten pool timeouts before it fails. Here a failed
    call fails at once: the pool's pre-ping already replaces stale connections, the guard
    answers for the outage, and a client retries the whole command with its
    Idempotency-Key (the one retry that is safe for a write).
    """
    for name in dir(type(recorder)):
        method = getattr(type(recorder), name, None)
        code = getattr(method, "__code__", None)
        wrapped = getattr(method, "__wrapped__", None)
        if wrapped is not None and code is retry_code():
            setattr(recorder, name, wrapped.__get__(recorder))


def retry_code() -> Any:
    """The code object of eventsourcing's retry wrapper, to recognise wrapped methods."""

    @retry(Exception, max_attempts=1)
    def probe() -> None:
        return None

    return probe.__code__


class StoreProbe:
    """``SELECT 1`` on a connection kept between probes, opened afresh when it fails.

    A fresh connection per probe (as before) failed whenever the server refused new
    connections (``too many clients``, max_connections reached by other processes): the
    guard then answered 503 for every request while the pool's open connections worked,
    which is saturation, not an outage. It also started a server process every second.
    A probe that finds the kept connection still busy in an earlier, hanging probe tries
    a fresh connection instead, so a restored network is noticed as soon as it answers.
    """

    def __init__(self, info: str) -> None:
        self._info = info
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None

    def __call__(self) -> None:
        if not self._lock.acquire(blocking=False):
            with psycopg.connect(self._info, autocommit=True) as fresh:
                fresh.execute("SELECT 1")
            return
        try:
            if self._conn is not None:
                try:
                    self._conn.execute("SELECT 1")
                    return
                except psycopg.Error:
                    self._discard()
            conn = psycopg.connect(self._info, autocommit=True)
            try:
                conn.execute("SELECT 1")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        finally:
            self._lock.release()

    def close(self) -> None:
        # A probe hanging on a dead network keeps the lock; the process ends it then.
        if self._lock.acquire(timeout=1.0):
            try:
                self._discard()
            finally:
                self._lock.release()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
