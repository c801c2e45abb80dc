"""The service plumbing every command shares: load → decide → save, retried as a whole.

Every command runs through ``_execute``: it reads the aggregates it needs, takes the
decision at one instant from the injected clock, and saves every touched aggregate in
one transaction. A concurrent writer makes that save fail with IntegrityError; the
whole command then runs again on fresh state, so two requests in the same millisecond
still give one answer.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.errors import IdempotencyKeyReused, NotFound, TooMuchContention
from domain.idempotency import IdempotencyRecord, record_id
from domain.policy import Policy, ProjectPolicy
from domain.ports import Clock, PersonalDataVault
from domain.values import Actor, PhoneKeyer

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class Idempotency:
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Context:
    """Who is asking, under which request id, and whether the request may repeat."""

    actor: Actor
    correlation_id: str
    idempotency: Idempotency | None = None

    @property
    def trace(self) -> dict[str, Any]:
        return {"actor": self.actor.as_dict(), "correlation_id": self.correlation_id}


@dataclass(frozen=True)
class CommandResult:
    body: dict[str, Any]
    status_code: int
    position: int | None  # notification id of the last event written (None if replayed)
    replayed: bool = False


Decision = tuple[list[Aggregate | None], dict[str, Any]]


def jsonable_dict(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(value)
    return out


def jsonable(value: Any) -> Any:
    """Datetimes and UUIDs as strings: bodies are stored and replayed verbatim."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class Service(Application):  # type: ignore[type-arg]
    def __init__(
        self,
        env: dict[str, str],
        *,
        clock: Clock,
        keyer: PhoneKeyer,
        vault: PersonalDataVault,
        max_attempts: int = 64,
    ) -> None:
        super().__init__(env)
        self.clock = clock
        self.keyer = keyer
        self.vault = vault
        self.max_attempts = max_attempts

    # ----------------------------------------------------------------- plumbing

    def _execute(
        self, ctx: Context, decide: Callable[[datetime], Decision], status_code: int = 201
    ) -> CommandResult:
        rid = record_id(ctx.actor.id, ctx.idempotency.key) if ctx.idempotency is not None else None
        for attempt in range(self.max_attempts):
            if rid is not None and ctx.idempotency is not None:
                earlier = self._find(IdempotencyRecord, rid)
                if earlier is not None:
                    if earlier.fingerprint != ctx.idempotency.fingerprint:
                        raise IdempotencyKeyReused(
                            "this Idempotency-Key was used for a different request"
                        )
                    return CommandResult(earlier.body, earlier.status_code, None, True)
            now = self.clock()
            aggregates, body = decide(now)
            body = jsonable(body)
            touched = [a for a in aggregates if a is not None]
            if rid is not None and ctx.idempotency is not None:
                stored = body.pop("_idempotent_body", body)
                touched.append(
                    IdempotencyRecord.record(
                        rid, ctx.idempotency.fingerprint, status_code, stored, now, ctx.trace
                    )
                )
            else:
                body.pop("_idempotent_body", None)
            try:
                recordings = self.save(*touched)
            except IntegrityError:
                # Someone else wrote one of these streams first: decide again on fresh
                # state. Jitter keeps N colliding writers from retrying in lockstep.
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
                continue
            position = max((r.notification.id for r in recordings), default=None)
            return CommandResult(body, status_code, position)
        raise TooMuchContention("too many concurrent writers for this object; try again")

    def _find(self, cls: type[A], aggregate_id: uuid.UUID, version: int | None = None) -> A | None:
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, cls):
            return None
        return aggregate

    def _get(self, cls: type[A], aggregate_id: uuid.UUID, what: str) -> A:
        aggregate = self._find(cls, aggregate_id)
        if aggregate is None:
            raise NotFound(f"{what} not found")
        return aggregate

    def policy_for(self, project_id: str) -> Policy:
        stream = self._find(ProjectPolicy, ProjectPolicy.create_id(project_id))
        return stream.current if stream else Policy()

    # ------------------------------------------------------------- utilities

    def position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def ping(self) -> None:
        self.recorder.max_notification_id()
