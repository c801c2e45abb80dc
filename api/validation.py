"""Input limits that hold for every operation, applied in one place.

Each check here answers a hand-made input with a 4xx problem instead of letting it reach
a store or a library that would fail with a 500: NUL and control characters (PostgreSQL
refuses NUL in text), dates at the calendar's edge (overflow on time-zone conversion),
integers past 64 bits (SQLite), JSON nested deep enough to exhaust the recursion limit,
bodies larger than anyone sends on purpose, and the wrong ``Content-Type``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, AwareDatetime, Field
from pydantic_core import PydanticCustomError

# Years outside this range are typos; the bound keeps every conversion to UTC and every
# "+ protection period" inside datetime's range.
EARLIEST_YEAR = 1900
LATEST_YEAR = 2199
INT64_MAX = 2**63 - 1
MAX_JSON_DEPTH = 32

# C0 and C1 controls (tab, line feed and carriage return are judged per field), DEL, and
# lone surrogates, which cannot be encoded as UTF-8 for either store.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_BREAKS = re.compile("[\t\n\r]")
# Fields of free text where line breaks are legitimate; every other text is one line.
MULTILINE_FIELDS = frozenset({"summary", "note", "reason", "comment", "source_detail"})
_INTEGER = re.compile(r"^[+-]?\d+$")
# Path and query values are one line and never need a control character.
_PARAM_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
PARAM_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def text_problem(value: str, multiline: bool = False) -> str | None:
    """Why ``value`` is not acceptable text, or None."""
    if _FORBIDDEN.search(value):
        return "must not contain control characters (such as NUL)"
    if not multiline and _LINE_BREAKS.search(value):
        return "must be one line: no tabs or line breaks"
    if value and not value.strip():
        return "must not be blank"
    return None


def check_text_tree(value: Any, multiline: bool) -> None:
    """Raise a pydantic error for the first bad string inside ``value``."""
    if isinstance(value, str):
        reason = text_problem(value, multiline)
        if reason:
            raise PydanticCustomError("invalid_text", reason)
    elif isinstance(value, list | tuple):
        for item in value:
            check_text_tree(item, multiline)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text_tree(key, False)
            check_text_tree(item, multiline)


def _bounded(moment: datetime) -> datetime:
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise PydanticCustomError(
            "datetime_out_of_range",
            f"must fall between the years {EARLIEST_YEAR} and {LATEST_YEAR}",
        )
    return moment


# A moment with its time zone (naive times are refused) inside the supported years.
Instant = Annotated[AwareDatetime, AfterValidator(_bounded)]


def _month(value: str) -> str:
    if not EARLIEST_YEAR <= int(value[:4]) <= LATEST_YEAR:
        raise PydanticCustomError(
            "datetime_out_of_range",
            f"must fall between the years {EARLIEST_YEAR} and {LATEST_YEAR}",
        )
    return value


Month = Annotated[
    str,
    Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM, month 01 to 12"),
    AfterValidator(_month),
]


def _invalid(where: str, name: str, message: str, code: str) -> RequestValidationError:
    return RequestValidationError([{"loc": (where, name), "msg": message, "type": code}])


async def check_parameters(request: Request) -> None:
    """App-wide dependency: path and query values are clean text and sane integers.

    It runs after routing (so path parameters have names) and before the route's own
    dependencies touch a store.
    """
    reason = "must not contain control characters (such as NUL)"
    for name, value in request.path_params.items():
        if isinstance(value, str) and _PARAM_FORBIDDEN.search(value):
            raise _invalid("path", name, reason, "invalid_text")
    if not request.scope.get("query_string"):
        return  # most requests: no query to parse
    for name, value in request.query_params.multi_items():
        if _PARAM_FORBIDDEN.search(value):
            raise _invalid("query", name, reason, "invalid_text")
        if _INTEGER.match(value) and abs(int(value)) > INT64_MAX:
            raise _invalid("query", name, "is too large", "integer_out_of_range")


def too_deep(body: bytes) -> bool:
    """Whether ``body`` nests arrays and objects deeper than ``MAX_JSON_DEPTH``."""
    # Nesting needs an opening bracket per level: a body with few brackets (every report)
    # cannot be too deep, and counting them is far cheaper than skipping its strings.
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False
    return json_depth(body) > MAX_JSON_DEPTH


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects, counted without parsing (strings skipped)."""
    # Remove string literals first: brackets inside them do not nest anything.
    stripped = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", body)
    brackets = stripped.translate(None, bytes(set(range(256)) - set(b"[]{}")))
    depth = deepest = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class BodyGuard:
    """Pure ASGI middleware: Content-Type, size and nesting of request bodies.

    It reads the body before any handler does, refusing with 415 (wrong media type),
    413 (over the limit; counted while streaming, so a liar's Content-Length does not
    help) or 422 (nested too deep for the JSON parser), and replays it downstream.
    """

    JSON_TYPES = ("application/json",)
    IMPORT_TYPES = (
        "text/csv",
        "application/csv",
        "text/plain",
        "application/json",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "multipart/form-data",
    )
    IMPORT_PATHS = ("/units:import", "/clients:import")
    # The auditor's page signs in with an HTML form (api/routers/audit.py).
    FORM_PATHS = ("/audit/sign-in", "/audit/sign-out")
    FORM_TYPES = ("application/x-www-form-urlencoded",)

    def __init__(self, app: ASGIApp, json_limit: int, import_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.import_limit = import_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        is_import = scope["path"].endswith(self.IMPORT_PATHS)
        limit = self.import_limit if is_import else self.json_limit
        allowed = self.IMPORT_TYPES if is_import else self.JSON_TYPES
        if scope["path"] in self.FORM_PATHS:
            allowed = self.FORM_TYPES
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, 413, "body_too_large", _too_large(limit))
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, send, 413, "body_too_large", _too_large(limit))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if body and media not in allowed:
            await self._refuse(
                scope,
                send,
                415,
                "unsupported_media_type",
                f"send Content-Type: {' or '.join(allowed)}",
            )
            return
        if media == "application/json" and too_deep(body):
            await self._refuse(
                scope,
                send,
                422,
                "invalid_input",
                "the request has invalid fields",
                [
                    {
                        "field": "body",
                        "message": f"nests arrays and objects deeper than {MAX_JSON_DEPTH}",
                        "code": "json_too_deep",
                    }
                ],
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        code: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        titles = {413: "Body too large", 415: "Unsupported media type", 422: "Invalid input"}
        problem: dict[str, Any] = {
            "type": f"/problems/{code}",
            "title": titles[status],
            "status": status,
            "detail": detail,
            "instance": scope["path"],
            "code": code,
        }
        if errors is not None:
            problem["errors"] = errors
        request_id = scope.get("state", {}).get("request_id")
        if request_id:
            problem["request_id"] = request_id
        payload = json.dumps(problem, ensure_ascii=False).encode()
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        if status == 413:
            # The rest of the body is not read; the connection cannot be reused.
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _too_large(limit: int) -> str:
    return f"the body is larger than {limit:,} bytes"
