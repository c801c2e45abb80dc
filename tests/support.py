"""Helpers shared by the test suites: a controllable clock and small builders."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.application import Context, Yingke
from domain.values import Actor

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


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def ctx(actor: Actor = ADMIN, correlation_id: str | None = None, **kwargs: Any) -> Context:
    return Context(actor=actor, correlation_id=correlation_id or unique("req"), **kwargs)


def register_consultant(
    app: Yingke, project_id: str, consultant_id: str | None = None, role: str = "consultant"
) -> str:
    """Register an active principal that may register visits at ``project_id``."""
    principal_id = consultant_id or unique("cons")
    app.register_principal(ctx(), principal_id, role, None, [project_id], f"key-{uuid.uuid4().hex}")
    return principal_id


def file_report(
    app: Yingke,
    project_id: str,
    partner_id: str,
    phone: str,
    *,
    context: Context | None = None,
    name: str = "张三丰",
) -> dict[str, Any]:
    result = app.file_report(
        context or ctx(Actor(f"agent-{partner_id}", "channel_agent")),
        project_id=project_id,
        partner_id=partner_id,
        agent_id=f"agent-{partner_id}",
        client_name=name,
        phone=phone,
    )
    return result.body


def register_visit(
    app: Yingke,
    project_id: str,
    phone: str,
    consultant_id: str,
    partner_id: str | None = None,
    *,
    context: Context | None = None,
    name: str = "张三丰",
) -> dict[str, Any]:
    result = app.register_visit(
        context or ctx(Actor(consultant_id, "consultant")),
        project_id=project_id,
        phone=phone,
        client_name=name,
        consultant_id=consultant_id,
        partner_id=partner_id,
        agent_id=f"agent-{partner_id}" if partner_id else None,
    )
    return result.body
