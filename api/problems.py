"""RFC 9457 problem details, and the one map from errors to HTTP statuses."""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, routing
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.deps import ViewsBehind
from domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    RateLimited,
    TooMuchContention,
)
from projections.queries import BadCursor
from yingke.guard import STORE_ERRORS, StoreUnavailable

log = logging.getLogger("yingke.api")

PROBLEM = "application/problem+json"
STORE_DOWN: tuple[type[Exception], ...] = (
    *STORE_ERRORS,
    StoreUnavailable,
    sqlite3.OperationalError,
)

_STATUS: list[tuple[type[DomainError], int, str]] = [
    (InvalidInput, 422, "Invalid input"),
    (IdempotencyKeyReused, 422, "Idempotency-Key reused"),
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Conflict"),
    (Forbidden, 403, "Forbidden"),
    (TooMuchContention, 503, "Too much contention"),
    (RateLimited, 429, "Too many requests"),
]


def problem(
    request: Request,
    status: int,
    title: str,
    detail: str,
    code: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    # ("body", "phone") → "phone"; ("query", "at") → "at"; nested → "profile.budget.min"
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


Handler = Callable[[Request, Any], Awaitable[Response]]


def admission_first(handler: Handler) -> Handler:
    """An error answered before a route settled its ``Admission`` settles it first: an
    unknown, revoked or unauthorized key is refused (401, 403) whatever else is wrong
    with the request, as when every request was authenticated before its body was read."""

    @functools.wraps(handler)
    async def answer(request: Request, exc: Any) -> Response:
        admission = getattr(request.state, "admission", None)
        if admission is not None and admission.pending:
            try:
                await run_in_threadpool(admission.settle)
            except StarletteHTTPException as refused:
                return _http_problem(request, refused)
            except STORE_DOWN as down:
                return await _store_down(request, down)
        return await handler(request, exc)

    return answer


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    @admission_first
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field_name(tuple(e.get("loc", ()))),
                "message": e.get("msg", ""),
                "code": e.get("type", "invalid"),
            }
            for e in exc.errors()
        ]
        return problem(
            request, 422, "Invalid input", "the request has invalid fields", "invalid_input", errors
        )

    @app.exception_handler(DomainError)
    @admission_first
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        status, title = next(
            ((code, name) for cls, code, name in _STATUS if isinstance(exc, cls)),
            (400, "Bad request"),
        )
        errors = None
        if isinstance(exc, InvalidInput):
            errors = list(exc.details())
        headers = {"Retry-After": "1"} if status == 503 else None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        return problem(request, status, title, str(exc), exc.code, errors, headers)

    @app.exception_handler(StarletteHTTPException)
    @admission_first
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _http_problem(request, exc)

    @app.exception_handler(ViewsBehind)
    @admission_first
    async def views_behind(request: Request, exc: ViewsBehind) -> JSONResponse:
        return problem(
            request,
            503,
            "Views behind",
            str(exc),
            "views_behind",
            headers={"Retry-After": "1"},
            position=exc.position,
            lag=exc.lag,
        )

    @app.exception_handler(BadCursor)
    @admission_first
    async def bad_cursor(request: Request, exc: BadCursor) -> JSONResponse:
        return problem(
            request,
            422,
            "Invalid input",
            str(exc),
            "invalid_input",
            [{"field": "cursor", "message": str(exc), "code": "invalid_cursor"}],
        )

    for error_type in STORE_DOWN:
        app.add_exception_handler(error_type, _store_down)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            request,
            500,
            "Internal error",
            "an unexpected error occurred; it was logged with this request id",
            "internal_error",
            # The server closes the connection after an unhandled error; say so, so the
            # client does not send its next request into a closed socket.
            headers={"Connection": "close"},
        )


def _http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
    }.get(exc.status_code, "http_error")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem(
        request,
        exc.status_code,
        code.replace("_", " ").capitalize(),
        str(exc.detail),
        code,
        headers=headers or None,
    )


def _allowed_methods(request: Request) -> list[str]:
    iterate = getattr(routing, "iter_route_contexts", None)
    routes: list[Any] = list(iterate(request.app.routes)) if iterate else request.app.routes
    methods: set[str] = set()
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _store_down(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StoreUnavailable):
        log.error("event store unavailable: %s", type(exc).__name__)
        # Let the guard probe now, so the next requests are answered without waiting.
        request.app.state.guard.suspect()
    return store_unavailable(request)


def store_unavailable(request: Request) -> JSONResponse:
    return problem(
        request,
        503,
        "Store unavailable",
        "the event store cannot be reached; retry with the same Idempotency-Key",
        "store_unavailable",
        headers={"Retry-After": "2"},
    )
