"""An OpenAPI document that tells the truth, and API docs served without a CDN.

FastAPI documents 200 and a JSON 422 only; the service answers problem+json with the
statuses below. They are added here, per operation, from what the operation depends on
(authentication, a request body, a command context), so a new route is documented
correctly without anyone remembering to.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api.authorization import access, get_admission
from api.deps import IDEMPOTENCY_KEY_DESCRIPTION, get_caller, get_context
from api.results import POSITION_HEADER
from api.tabular import tabular
from api.validation import PARAM_PATTERN
from yingke.sheets.reading import XLSX

ASSETS = "/docs-assets"
PROBLEM = "application/problem+json"
WRITES = {"post", "put", "patch", "delete"}

_TITLES = {
    400: "Bad request: a malformed header such as Idempotency-Key",
    401: "Missing, unknown or revoked API key",
    403: "The caller's role or projects do not allow this",
    404: "Not found",
    409: "Conflict: the current state refuses the command (or If-Match is stale)",
    413: "Body larger than the configured limit",
    415: "Unsupported Content-Type",
    422: "Invalid input: `errors` names each field",
    503: "Event store unavailable, views behind or too much contention; retry after "
    "Retry-After seconds (with the same Idempotency-Key)",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "/problems/<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path"},
        "code": {"type": "string", "description": "Stable, machine-readable"},
        "request_id": {"type": "string", "description": "As in X-Request-ID"},
        "errors": {
            "type": "array",
            "description": "422 only: one entry per refused field",
            "items": {"$ref": "#/components/schemas/FieldError"},
        },
    },
    "additionalProperties": True,
}

FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "title": "FieldError",
    "type": "object",
    "required": ["field", "message", "code"],
    "properties": {
        "field": {"type": "string", "description": "e.g. phone, profile.budget_min, line 7"},
        "message": {"type": "string"},
        "code": {"type": "string"},
    },
}

REQUEST_ID_PARAM: dict[str, Any] = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "description": "Correlation id recorded on every event; echoed back when it is 1-128 "
    "of A-Z a-z 0-9 . _ : -, otherwise replaced by a fresh one",
    "schema": {"type": "string"},
}

IDEMPOTENCY_KEY_PARAM = {
    "name": "idempotency-key",
    "in": "header",
    "required": False,
    "description": IDEMPOTENCY_KEY_DESCRIPTION,
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
}

_REQUEST_ID_HEADER = {"description": "The request's correlation id", "schema": {"type": "string"}}


def _calls(dependant: Dependant) -> set[Any]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def _authenticated(route: Any, calls: set[Any]) -> bool:
    """The table says whether the operation needs a caller (``enforce_access`` asks)."""
    return get_caller in calls or not access(route.endpoint.__name__).public


def _commands(calls: set[Any]) -> bool:
    """Whether the route takes a command context (an Idempotency-Key, a position)."""
    return get_context in calls or get_admission in calls


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _TITLES[status],
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        "headers": {"X-Request-ID": _REQUEST_ID_HEADER},
    }
    if status == 503:
        response["headers"]["Retry-After"] = {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer"},
        }
    if status == 401:
        response["headers"]["WWW-Authenticate"] = {"schema": {"type": "string"}}
    return response


def _statuses(route: Any, method: str, calls: set[Any], has_body: bool) -> list[int]:
    statuses = [422]
    if route.path != "/healthz":
        statuses.append(503)
    if "{" in route.path or has_body:
        # A path id, or an id the body refers to (a client, a unit), may not exist.
        statuses.append(404)
    if _authenticated(route, calls):
        statuses += [401, 403]
        if method in WRITES:
            statuses.append(409)
    if _commands(calls) or has_body:
        # A bad Idempotency-Key or Yingke-After, or a body that is not JSON at all.
        statuses.append(400)
    if has_body:
        statuses += [413, 415]
    return sorted(statuses)


def _api_routes(app: FastAPI) -> list[Any]:
    """The documented API routes with their effective dependencies (app, router, route).

    FastAPI 0.16x keeps included routers as lazily combined contexts; older versions list
    APIRoutes directly.
    """
    iterate = getattr(routing, "iter_route_contexts", None)
    candidates: list[Any] = list(iterate(app.routes)) if iterate else list(app.routes)
    return [
        route
        for route in candidates
        if isinstance(getattr(route, "original_route", route), APIRoute) and route.include_in_schema
    ]


def document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["FieldError"] = FIELD_ERROR_SCHEMA
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: the admin key, or one issued by POST /v1/principals",
        }
    }
    for route in _api_routes(app):
        calls = _calls(route.dependant)
        for method in route.methods or ():
            operation = schema["paths"][route.path_format].get(method.lower())
            if operation is not None:
                _amend(route, method.lower(), operation, calls)
    return schema


def _forbid_control_characters(schema: dict[str, Any]) -> None:
    """Document what check_parameters enforces on every text parameter."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string" and "pattern" not in option and "format" not in option:
            option["pattern"] = PARAM_PATTERN


def _amend(route: Any, method: str, operation: dict[str, Any], calls: set[Any]) -> None:
    params = [
        p
        for p in operation.get("parameters", [])
        if not (p["in"] == "header" and p["name"].lower() == "authorization")
    ]
    for param in params:
        schema = param.get("schema", {})
        if param["name"].lower() == "idempotency-key":
            # As enforced in api/deps.py.
            param["schema"] = {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"}
        elif param["in"] in ("path", "query"):
            _forbid_control_characters(schema)
    if get_admission in calls:
        # Read from the headers by the admission itself, not declared to FastAPI.
        params.append(IDEMPOTENCY_KEY_PARAM)
    operation["parameters"] = [*params, REQUEST_ID_PARAM]
    if _authenticated(route, calls):
        operation["security"] = [{"bearer": []}]
    has_body = "requestBody" in operation
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    for code, response in responses.items():
        headers = response.setdefault("headers", {})
        headers["X-Request-ID"] = _REQUEST_ID_HEADER
        if _commands(calls) and code.startswith("2"):
            headers[POSITION_HEADER] = {
                "description": "Log position of this command: pass it as ?after= (or the "
                "Yingke-After header) to read your own write",
                "schema": {"type": "integer"},
            }
            headers["Idempotent-Replayed"] = {
                "description": "true when this is the stored answer to a repeated Idempotency-Key",
                "schema": {"type": "string"},
            }
    if tabular in calls and "200" in responses:
        # The same rows as a streamed download (Accept or ?format=): api/tabular.py.
        content = responses["200"].setdefault("content", {})
        content["text/csv"] = {"schema": {"type": "string"}}
        content[XLSX] = {"schema": {"type": "string", "format": "binary"}}
    for status in _statuses(route, method, calls, has_body):
        responses[str(status)] = _problem_response(status)


def install(app: FastAPI) -> None:
    """The OpenAPI document, and /docs and /redoc from assets inside the installed package.

    The app must be created with ``docs_url=None, redoc_url=None``.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), "assets")

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
