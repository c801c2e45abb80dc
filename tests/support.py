"""Helpers shared by the test suites: a controllable clock and small builders."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from eventsourcing.sqlite import SQLiteCursor

from api import bodies
from api.bodies import answer, jsonable
from domain.services.deals import DealView
from domain.services.disputes import DisputeView
from domain.services.policies import SettingsVersion
from domain.services.units import UnitImport
from domain.services.uow import Context, Done
from domain.values import Actor
from yingke.bootstrap import Container

START = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
ADMIN = Actor("admin", "admin")


class FakeClock:
    """A clock that only moves when told to; safe to share between threads."""

    def __init__(self, start: datetime = START) -> None:
        self._lock = threading.Lock()
        self.now = start

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self.now = self.now + timedelta(**delta)
            return self.now


def shown(present: Callable[[Any], dict[str, Any]], value: Any) -> dict[str, Any]:
    """``value`` as the API shows it: tests read outcomes through the API's presenters."""
    out: dict[str, Any] = jsonable(present(value))
    return out


def body_of(done: Done[Any]) -> dict[str, Any]:
    """A command's outcome as the API shows it, for outcomes with one presentation."""
    value = done.value
    for kind, present in (
        (DealView, bodies.deal),
        (UnitImport, bodies.unit_import),
        (DisputeView, bodies.dispute),
        (SettingsVersion, bodies.settings),
    ):
        if isinstance(value, kind):
            return shown(present, value)
    raise TypeError(f"no single presentation for {type(value).__name__}")


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 120.0,
    message: str | Callable[[], str] = "the condition",
    interval: float = 0.01,
) -> None:
    """Poll ``predicate`` until it is true; fail naming ``message`` after ``timeout`` s.

    The bound is deliberately generous: it only decides how long a broken build takes to
    say so, never whether a correct one passes on a loaded machine.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g} s waiting for {said}")
        time.sleep(interval)


# How long a spawned server may take to answer /healthz. Start-up imports the whole
# application; on a two-core CI box running other suites that has taken over 30 s.
SERVER_START_BOUND = 180.0


def wait_for_server(process: subprocess.Popen[str], base: str) -> None:
    """Wait until ``process`` answers ``base``/healthz; fail with its output if it exits."""

    def answering() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.communicate()[0]}")
        try:
            return httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            time.sleep(0.2)
            return False

    try:
        wait_until(answering, SERVER_START_BOUND, f"{base}/healthz to answer")
    except AssertionError:
        if process.poll() is None:
            process.kill()
            raise AssertionError(f"server did not start: {process.communicate()[0]}") from None
        raise


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def ctx(actor: Actor = ADMIN, correlation_id: str | None = None, **kwargs: Any) -> Context:
    return Context(actor=actor, correlation_id=correlation_id or unique("req"), **kwargs)


def register_consultant(
    app: Container, project_id: str, consultant_id: str | None = None, role: str = "consultant"
) -> str:
    """Register an active principal that may register visits at ``project_id``."""
    principal_id = consultant_id or unique("cons")
    app.principals.register_principal(
        ctx(), principal_id, role, None, [project_id], f"key-{uuid.uuid4().hex}"
    )
    return principal_id


def file_report(
    app: Container,
    project_id: str,
    partner_id: str,
    phone: str,
    *,
    context: Context | None = None,
    name: str = "张三丰",
) -> dict[str, Any]:
    context = context or ctx(Actor(f"agent-{partner_id}", "channel_agent"))
    result = app.reports.file_report(
        context if context.respond else context.answering(answer(201, bodies.filed_report)),
        project_id=project_id,
        partner_id=partner_id,
        agent_id=f"agent-{partner_id}",
        client_name=name,
        phone=phone,
    )
    assert result.response is not None
    return result.response.body


def register_visit(
    app: Container,
    project_id: str,
    phone: str,
    consultant_id: str,
    partner_id: str | None = None,
    *,
    context: Context | None = None,
    name: str = "张三丰",
) -> dict[str, Any]:
    context = context or ctx(Actor(consultant_id, "consultant"))
    result = app.visits.register_visit(
        context if context.respond else context.answering(answer(201, bodies.visit)),
        project_id=project_id,
        phone=phone,
        client_name=name,
        consultant_id=consultant_id,
        partner_id=partner_id,
        agent_id=f"agent-{partner_id}" if partner_id else None,
    )
    assert result.response is not None
    return result.response.body


@contextmanager
def statements() -> Iterator[list[str]]:
    """The data statements the calling thread sends to the store, SQLite or PostgreSQL,
    in order (transaction control left out): a deterministic count of a read's work."""
    sent: list[str] = []
    me = threading.get_ident()
    patched: list[tuple[type, str]] = [(psycopg.Cursor, "execute"), (psycopg.Cursor, "executemany")]
    patched += [(SQLiteCursor, "execute"), (SQLiteCursor, "executemany")]
    originals = [(cls, name, getattr(cls, name)) for cls, name in patched]

    def counting(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            text = query if isinstance(query, str) else repr(query)
            if threading.get_ident() == me and text.strip().upper() != "BEGIN":
                sent.append(text)
            return original(self, query, *args, **kwargs)

        return call

    for cls, name, original in originals:
        setattr(cls, name, counting(original))
    try:
        yield sent
    finally:
        for cls, name, original in originals:
            setattr(cls, name, original)
