"""Schemathesis over every operation of the ASGI app (SQLite): generated requests, valid
and not, must never get a 5xx, and every answer must be documented: its status, its
content type, its body schema and its headers.

The examples per operation are few on purpose, to keep this under two minutes on a
small machine; `schemathesis run --checks all` against `make serve` goes further (README).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from tests.http.conftest import ADMIN_KEY
from tests.support import FakeClock
from yingke.bootstrap import build
from yingke.settings import load_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


# Built at collection: schemathesis turns each operation into its own test item then.
# (Its lazy from_fixture loader does not work with pytest 9.)
_DATA_DIR = tempfile.mkdtemp(prefix="yingke-schemathesis-")
_CONTAINER = build(
    load_settings(
        {
            "YINGKE_DATA_DIR": _DATA_DIR,
            "YINGKE_ADMIN_KEY": ADMIN_KEY,
            "YINGKE_SECRET": "test-secret-0123456789abcdef",
        }
    ),
    clock=FakeClock(),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_CONTAINER))


@pytest.fixture(scope="module", autouse=True)
def _running_workers() -> Iterator[None]:
    _CONTAINER.start_workers()
    yield
    _CONTAINER.close()
    shutil.rmtree(_DATA_DIR, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_operation_answers_as_documented(case: Any) -> None:
    # The bound only says how long a hung request may take to fail; a loaded CI box has
    # taken over the default 10 s for one request.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ADMIN_KEY}"}, checks=CHECKS, timeout=120
    )


def test_the_document_names_problem_responses_security_and_headers(tmp_path: Path) -> None:
    env = {"YINGKE_DATA_DIR": str(tmp_path), "YINGKE_ADMIN_KEY": ADMIN_KEY}
    container = build(load_settings(env))
    try:
        document = create_app(container).openapi()
    finally:
        container.close()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in document["components"]["schemas"]
    report = document["paths"]["/v1/reports"]["post"]
    assert report["security"] == [{"bearer": []}]
    for status in ("400", "401", "403", "409", "413", "415", "422", "503"):
        content = report["responses"][status]["content"]
        assert list(content) == ["application/problem+json"]
    assert "Yingke-Position" in report["responses"]["201"]["headers"]
    names = {p["name"].lower() for p in report["parameters"]}
    assert {"idempotency-key", "x-request-id"} <= names
    assert "authorization" not in names
    assert "Retry-After" in report["responses"]["503"]["headers"]
