"""The FastAPI application factory."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from api import problems
from api.routers import (
    aftercare,
    client_import,
    clients,
    commission,
    consultants,
    deal_views,
    deals,
    disputes,
    health,
    policies,
    principals,
    queries,
    reports,
    status,
    units,
    visits,
)
from yingke.bootstrap import Container, build
from yingke.settings import load_settings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

DESCRIPTION = """
赢客 Yingke records channel reports (报备), visits (到访) and ownership decisions (判客)
as events, and answers who owns a buyer, since when, and under which rule.

Authenticate with `Authorization: Bearer <key>`. Errors are `application/problem+json`
(RFC 9457) with field-level `errors` for 422. Send `Idempotency-Key` on POSTs to repeat
them safely, and `X-Request-ID` to correlate: it is recorded on every event.
"""


def create_app(container: Container) -> FastAPI:
    app = FastAPI(title="赢客 Yingke", version="0.1.0", description=DESCRIPTION)
    app.state.container = container
    problems.install(app)

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        given = request.headers.get("x-request-id", "")
        request.state.request_id = given if _REQUEST_ID.match(given) else str(uuid.uuid4())
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    for module in (
        health,
        principals,
        policies,
        reports,
        visits,
        clients,
        aftercare,
        disputes,
        consultants,
        units,
        client_import,
        deals,
        commission,
        deal_views,
        queries,
        status,
    ):
        app.include_router(module.router)
    return app


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory api.app:create_app_from_env`` (one container per process)."""
    return create_app(build(load_settings()))
