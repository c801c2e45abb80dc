"""Request-scoped dependencies: the container, the caller, the command context."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Header, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from domain.errors import InvalidInput
from domain.principal import Principal
from domain.services.uow import Context, Idempotency
from domain.values import Actor
from domain.vocabulary import Role
from yingke.bootstrap import Container

T = TypeVar("T")
# As many threads as anyio lends sync endpoints by default.
_REQUEST_THREADS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="yingke-request")


async def in_worker(work: Callable[[], T]) -> T:
    """Run ``work`` on a worker thread in a copy of this context (``READER_ARRIVED``).

    The same hop as a sync endpoint's, for an endpoint that makes one on the hottest
    path: the executor's queue is cheaper than anyio's for the event loop (under
    concurrency about 30 µs of CPU per hop against 80).
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_REQUEST_THREADS, contextvars.copy_context().run, work)


# Roles that see every project; every other role works inside the projects it is granted.
GLOBAL_ROLES: tuple[Role, ...] = ("admin", "auditor", "service")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Caller:
    id: str
    role: str
    partner_id: str | None = None
    project_ids: tuple[str, ...] = field(default_factory=tuple)
    team_id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Caller:
        """The caller a principal's key (or the audit page's session) stands for."""
        return cls(
            principal.principal_id,
            principal.role,
            principal.partner_id,
            tuple(principal.project_ids),
            principal.team_id,
        )

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.role)

    def covers(self, project_id: str) -> bool:
        if self.role in GLOBAL_ROLES:
            return True
        # A channel agent granted no project list may report to any project.
        if self.role == "channel_agent" and not self.project_ids:
            return True
        return project_id in self.project_ids


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def caller_without_store(container: Container, authorization: str | None) -> Caller | None:
    """The part of authentication that needs no store: a missing or malformed header is
    refused (401), the admin key admitted; None when the key must be looked up."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "send Authorization: Bearer <key>", headers=_CHALLENGE)
    if secrets.compare_digest(_key(authorization).encode(), container.settings.admin_key.encode()):
        return Caller("admin", "admin")
    return None


def caller_from_store(container: Container, authorization: str) -> Caller:
    """The key's principal, as of the log when the request arrived (a key revoked by then
    fails); reads the store, so never on the event loop."""
    return _caller_of(container.principals.authenticate(_key(authorization)))


def _key(authorization: str) -> str:
    return authorization[7:].strip()


def _caller_of(principal: Principal | None) -> Caller:
    if principal is None:
        raise HTTPException(401, "unknown or revoked API key", headers=_CHALLENGE)
    return Caller.of(principal)


async def get_caller(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> Caller:
    known: Caller | None = getattr(request.state, "caller", None)
    if known is not None:
        return known
    container = get_container(request)
    caller = caller_without_store(container, authorization)
    if caller is None:
        assert authorization is not None
        # The only part that may wait on the store runs on a worker thread.
        principal = await run_in_threadpool(container.principals.authenticate, _key(authorization))
        caller = _caller_of(principal)
    request.state.caller = caller
    return caller


async def idempotency_of(request: Request, idempotency_key: str | None) -> Idempotency | None:
    """The request's Idempotency-Key with the fingerprint of its method, path and body."""
    if idempotency_key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise HTTPException(400, "Idempotency-Key must be 1-255 visible ASCII characters")
    body = await request.body()
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True).encode()
    except ValueError:
        canonical = body
    secret = get_container(request).settings.secret
    message = f"{request.method} {request.url.path}\n".encode() + canonical
    fingerprint = hmac.new(secret, message, hashlib.sha256).hexdigest()
    return Idempotency(idempotency_key, fingerprint)


IDEMPOTENCY_KEY_DESCRIPTION = "Repeat a POST safely: same key and body → the first response"
IdempotencyKey = Annotated[str | None, Header(description=IDEMPOTENCY_KEY_DESCRIPTION)]


async def get_context(
    request: Request,
    caller: Annotated[Caller, Depends(get_caller)],
    idempotency_key: IdempotencyKey = None,
) -> Context:
    idempotency = await idempotency_of(request, idempotency_key)
    return Context(caller.actor, request.state.request_id, idempotency)


async def container_dependency(request: Request) -> Container:
    """``get_container`` as a dependency that needs no worker thread."""
    return get_container(request)


# The services, built once by the composition root (``yingke.bootstrap``).
AppDep = Annotated[Container, Depends(container_dependency)]
CallerDep = Annotated[Caller, Depends(get_caller)]
ContextDep = Annotated[Context, Depends(get_context)]


def fresh_views(
    request: Request,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**63 - 1,
            description="Wait until the views include this position "
            "(the Yingke-Position of your last command)",
        ),
    ] = None,
    yingke_after: Annotated[int | None, Header(ge=0, le=2**63 - 1)] = None,
) -> None:
    """Read-your-writes: wait briefly for the views, or refuse rather than answer stale."""
    position = after if after is not None else yingke_after
    if position is None:
        return
    container = get_container(request)
    head = container.position()
    if position > head:
        # No command ever answered this position: waiting could not help.
        raise InvalidInput(
            "after" if after is not None else "Yingke-After",
            f"is beyond the head of the event log ({head})",
            code="position_beyond_head",
        )
    if not container.follower.wait_for(position, container.settings.read_wait):
        lag = max(0, position - min(container.follower.positions().values(), default=0))
        raise ViewsBehind(position, lag)


class ViewsBehind(Exception):
    def __init__(self, position: int, lag: int) -> None:
        super().__init__(f"views have not reached position {position} yet ({lag} behind)")
        self.position = position
        self.lag = lag


FreshDep = Depends(fresh_views)
