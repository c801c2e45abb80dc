"""The unit of work every command shares: load → decide → save, retried as a whole.

A command hands ``run`` a ``decide(now)`` function that reads the aggregates it needs,
takes the decision at one instant from the injected clock, and returns the aggregates to
save with the command's outcome. Everything touched is saved in one transaction. A
concurrent writer makes that save fail with IntegrityError; the whole command then runs
again on fresh state, so two requests in the same millisecond still give one answer.

A repeatable command (an Idempotency-Key) also saves, in that same transaction, the
response the caller built from the outcome (``Context.respond``); a repeat finds that
record and answers with it verbatim. What a response looks like is the caller's business:
this module only stores it.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.errors import IdempotencyKeyReused, NotFound, TooMuchContention
from domain.idempotency import IdempotencyRecord, record_id
from domain.ports import Clock
from domain.values import Actor

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")


@dataclass(frozen=True)
class Idempotency:
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Response:
    """A caller's answer to a command, as an idempotency record keeps it.

    ``replay_body`` is what a repeat answers when it must differ from the first answer
    (a secret shown once); by default a repeat answers ``body``.
    """

    status: int
    body: dict[str, Any]
    replay_body: dict[str, Any] | None = None


Respond = Callable[[Any], Response]


@dataclass(frozen=True)
class Context:
    """Who is asking, under which request id, whether the request may repeat, and how
    the caller answers it (needed only when it may repeat)."""

    actor: Actor
    correlation_id: str
    idempotency: Idempotency | None = None
    respond: Respond | None = None

    @property
    def trace(self) -> dict[str, Any]:
        return {"actor": self.actor.as_dict(), "correlation_id": self.correlation_id}

    def answering(self, respond: Respond) -> Context:
        return Context(self.actor, self.correlation_id, self.idempotency, respond)


@dataclass(frozen=True)
class Done(Generic[R]):
    """A command's result: its outcome, or (replayed) the stored earlier response."""

    outcome: R | None
    position: int | None  # notification id of the last event written (None if replayed)
    response: Response | None = None
    replayed: bool = False
    # The domain events this command's save wrote (empty if replayed).
    recorded: tuple[Any, ...] = ()

    @property
    def value(self) -> R:
        assert self.outcome is not None, "a replayed command has only its stored response"
        return self.outcome


# When the request being served arrived (``time.monotonic()``), set by the API for each
# request: its reads are owed the log as of then, so the catch-up of the kept principal
# and policy copies (``WatchedStreams``) that its authentication waited for also serves
# its later reads of them: one round trip per request, not one per read. Unset (None)
# outside requests and after the request's own write.
READER_ARRIVED: ContextVar[float | None] = ContextVar("reader_arrived", default=None)


class UnitOfWork:
    """The one event store (an eventsourcing Application) and the command loop over it."""

    def __init__(
        self,
        store: Application,  # type: ignore[type-arg]
        clock: Clock,
        max_attempts: int = 64,
        attempt_scope: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_attempts = max_attempts
        # Entered around each attempt (decide and save): the vault keeps the subject keys
        # an attempt creates until its save stores them with its events (ADR 0065).
        self.attempt_scope = attempt_scope or nullcontext

    def run(self, ctx: Context, decide: Callable[[datetime], tuple[list[Any], R]]) -> Done[R]:
        idem = ctx.idempotency
        rid = record_id(ctx.actor.id, idem.key) if idem is not None else None
        if idem is not None and ctx.respond is None:
            raise ValueError("a repeatable command needs a respond function to store")
        for attempt in range(self.max_attempts):
            with self.attempt_scope():
                done = self._attempt(ctx, decide, rid)
            if done is not None:
                return done
            # Someone else wrote one of these streams first: decide again on fresh
            # state. Jitter keeps N colliding writers from retrying in lockstep.
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise TooMuchContention("too many concurrent writers for this object; try again")

    def _attempt(
        self,
        ctx: Context,
        decide: Callable[[datetime], tuple[list[Any], R]],
        rid: uuid.UUID | None,
    ) -> Done[R] | None:
        """Decide and save once; None if a concurrent writer refused the save."""
        idem = ctx.idempotency
        if rid is not None and idem is not None:
            earlier = self.find(IdempotencyRecord, rid)
            if earlier is not None:
                if earlier.fingerprint != idem.fingerprint:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was used for a different request"
                    )
                stored = Response(earlier.status_code, earlier.body)
                return Done(None, None, stored, True)
        now = self.clock()
        aggregates, outcome = decide(now)
        touched = [a for a in aggregates if a is not None]
        response = ctx.respond(outcome) if ctx.respond is not None else None
        if rid is not None and idem is not None and response is not None:
            kept = response.body if response.replay_body is None else response.replay_body
            touched.append(
                IdempotencyRecord.record(
                    rid, idem.fingerprint, response.status, kept, now, ctx.trace
                )
            )
        try:
            recordings = self.store.save(*touched)
        except IntegrityError:
            return None
        position = max((r.notification.id for r in recordings), default=None)
        recorded = tuple(r.domain_event for r in recordings)
        # Reads after this write (later in the same request) must see it: the kept
        # copies catch up from now on, not from when the request arrived.
        READER_ARRIVED.set(None)
        return Done(outcome, position, response, recorded=recorded)

    def find(self, cls: type[A], aggregate_id: uuid.UUID, version: int | None = None) -> A | None:
        repository = self.store.repository
        if repository.snapshot_store is None and not repository.cache:
            # What ``repository.get`` does here, without raising and catching
            # AggregateNotFoundError (and formatting its message) for every stream not
            # yet written: most reports' buyers are new (issue 15).
            aggregate: Aggregate | None = fold(
                None, self.store.events.get(aggregate_id, lte=version)
            )
        else:
            try:
                aggregate = repository.get(aggregate_id, version=version, projector_func=fold)
            except AggregateNotFoundError:
                return None
        if not isinstance(aggregate, cls):
            return None
        return aggregate

    def get(self, cls: type[A], aggregate_id: uuid.UUID, what: str) -> A:
        aggregate = self.find(cls, aggregate_id)
        if aggregate is None:
            raise NotFound(f"{what} not found")
        return aggregate

    def events(self, aggregate_id: uuid.UUID) -> list[Any]:
        return list(self.store.events.get(aggregate_id))

    def position(self) -> int:
        return self.store.recorder.max_notification_id() or 0

    def ping(self) -> None:
        self.store.recorder.max_notification_id()


def fold(state: Any, events: Iterable[Any]) -> Any:
    """Each event's ``mutate`` in turn, as the library's ``project_aggregate`` does but
    without its per-event ``isinstance`` against a runtime ``Protocol`` (an assert that
    was a quarter of a 1,000-event load's CPU, issue 15)."""
    for event in events:
        state = event.mutate(state)
    return state
