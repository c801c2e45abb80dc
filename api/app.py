"""The FastAPI application factory."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from importlib.resources import files

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import integrity, openapi, problems
from api.authorization import enforce_access
from api.metrics import instrument
from api.routers import (
    aftercare,
    audit,
    client_import,
    clients,
    commission,
    consultants,
    contact,
    deal_views,
    deals,
    disputes,
    evidence,
    health,
    policies,
    principals,
    queries,
    receipts,
    reports,
    status,
    units,
    visits,
    whatif,
    workday,
)
from api.validation import BodyGuard, check_parameters
from domain.services.uow import READER_ARRIVED
from yingke.bootstrap import Container, build, store_probe
from yingke.guard import StoreGuard
from yingke.settings import Settings, load_settings

log = logging.getLogger("yingke.api")
# Paths that never touch the store: answered even while the store is down.
STORELESS = ("/healthz", "/docs", "/redoc", "/openapi.json", openapi.ASSETS)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

DESCRIPTION = """
赢客 Yingke records channel reports (报备), visits (到访) and ownership decisions (判客)
as events, and answers who owns a buyer, since when, and under which rule.

Authenticate with `Authorization: Bearer <key>`. Errors are `application/problem+json`
(RFC 9457) with field-level `errors` for 422. Send `Idempotency-Key` on POSTs to repeat
them safely, and `X-Request-ID` to correlate: it is recorded on every event.
"""


ROUTERS = (
    health,
    principals,
    policies,
    reports,
    receipts,
    visits,
    clients,
    evidence,
    contact,
    aftercare,
    disputes,
    consultants,
    units,
    client_import,
    deals,
    commission,
    deal_views,
    queries,
    workday,
    status,
    whatif,
)


def assembled_routes() -> list[tuple[str, str, str]]:
    """(endpoint name, method, path) of every documented route, without building an app."""
    return [
        (route.endpoint.__name__, method, route.path)
        for module in ROUTERS
        for route in module.router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in sorted(route.methods or ())
    ]


def create_app(container: Container) -> FastAPI:
    app = _assemble(container.settings)
    app.state.container = container
    app.state.guard = container.guard
    return app


def create_waiting_app(settings: Settings, connect: Callable[[], Container]) -> FastAPI:
    """The app of a ``serve`` started while the store is down: alive (``/healthz``), not
    ready (503 everywhere else) until ``connect`` succeeds; then it serves as usual."""
    app = _assemble(settings)
    app.state.container = None
    lock = threading.Lock()
    # A cheap connection first: a failed build leaves the library's pool reconnecting.
    reachable = store_probe(settings)

    def probe() -> None:
        with lock:
            if app.state.container is None:
                reachable()
                reachable.close()  # the container's own guard keeps the probing from now on
                container = connect()
                if settings.workers == "inprocess":
                    container.start_workers()
                app.state.container = container
        waiting.stop(wait=False)
        app.state.guard = app.state.container.guard
        log.warning("event store reachable; serving requests")

    # Building connects to the store, which may take longer than one probe period.
    waiting = StoreGuard(probe, available=False, probe_timeout=10.0, down_interval=1.0)
    app.state.guard = waiting
    waiting.start()
    return app


def _assemble(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="赢客 Yingke",
        version="0.1.0",
        description=DESCRIPTION,
        dependencies=[Depends(check_parameters), Depends(enforce_access)],
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app)
    integrity.install(app)
    # Added before the request-id middleware so that one wraps it: refusals carry the id.
    app.add_middleware(
        BodyGuard,
        json_limit=settings.max_json_body,
        import_limit=settings.max_import_body,
    )

    app.add_middleware(RequestId)
    for module in ROUTERS:
        app.include_router(module.router)
    app.include_router(audit.router)
    app.mount(audit.ASSETS, StaticFiles(directory=str(files("api") / "static")), "audit-assets")
    instrument(app)
    openapi.install(app)
    return app


class RequestId:
    """Pure ASGI middleware: the request id, and a 503 at once while the store is down.

    (Starlette's ``BaseHTTPMiddleware`` runs every request through an extra task and
    memory streams: on the report path that was a large share of the event loop's time.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = given if _REQUEST_ID.match(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *(h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"),
                    header,
                ]
            await send(message)

        guard: StoreGuard = scope["app"].state.guard
        if not guard.available and not scope["path"].startswith(STORELESS):
            # The store is known to be down: answer now instead of waiting for the pool.
            response = problems.store_unavailable(Request(scope, receive))
            await response(scope, receive, send_with_id)
            return
        # Worker threads the request hops to run in a copy of this context.
        arrived = READER_ARRIVED.set(time.monotonic())
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            READER_ARRIVED.reset(arrived)


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory api.app:create_app_from_env`` (one container per process;
    ``yingke serve --workers N`` starts N of them). A store that is down at start gives
    the waiting app, as ``serve`` does."""
    from yingke.guard import STORE_ERRORS

    settings = load_settings()
    try:
        return create_app(build(settings))
    except STORE_ERRORS:
        log.exception("event store unreachable at start; serving 503 until it answers")
        return create_waiting_app(settings, lambda: build(settings))
