"""The one authorization table (``api.authorization``) against the routes and the README."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from fastapi import FastAPI

from api.access import RELATIONS
from api.authorization import README_END, README_START, TABLE, operation_paths, readme_section
from api.openapi import _api_routes
from domain.vocabulary import ROLES
from tests.http.conftest import Api

README = Path(__file__).resolve().parents[2] / "README.md"


def _operations(app: FastAPI) -> dict[tuple[str, str], str]:
    """(path, method) → endpoint name, for every documented route."""
    return {
        (route.path_format, method.lower()): route.endpoint.__name__
        for route in _api_routes(app)
        for method in route.methods or ()
    }


def test_every_documented_operation_has_exactly_one_entry(api: Api) -> None:
    app = api.client.app
    assert isinstance(app, FastAPI)
    documented = {
        (path, method)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    operations = _operations(app)
    assert set(operations) == documented
    names = list(operations.values())
    # One entry per operation: no two routes may share an endpoint name (the table's key).
    assert sorted(set(names)) == sorted(names)
    assert set(names) == set(TABLE), set(names) ^ set(TABLE)


def test_every_role_in_the_table_is_a_role_with_a_relation() -> None:
    for name, entry in TABLE.items():
        for role, relation in (entry.relations or {}).items():
            assert role in ROLES, (name, role)
            assert relation in RELATIONS, (name, role, relation)


def test_the_readmes_role_table_is_the_authorization_table(api: Api) -> None:
    app = api.client.app
    assert isinstance(app, FastAPI)
    paths = operation_paths()
    # The README is generated from the same routes the application serves.
    served = {name: f"{method.upper()} {path}" for (path, method), name in _operations(app).items()}
    assert paths == served
    text = README.read_text(encoding="utf-8")
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    assert text[start:end] == readme_section(paths), "run: python -m api.authorization"
    # And, read back cell by cell, it says what the table says.
    rows = [line.split("|")[1:-1] for line in text[start:end].splitlines()[3:-1]]
    header = [c.strip(" `") for c in text[start:end].splitlines()[1].split("|")[1:-1]]
    assert header == ["operation", *ROLES]
    by_path = {v: k for k, v in paths.items()}
    for cells in rows:
        entry = TABLE[by_path[cells[0].strip(" `")]]
        for role, cell in zip(ROLES, cells[1:], strict=True):
            expected = "public" if entry.public else entry.relation(role) or ""
            assert cell.strip() == expected, (cells[0], role)
    assert len(rows) == len(TABLE)


def test_the_readme_names_only_real_roles_and_says_where_access_lives() -> None:
    text = README.read_text(encoding="utf-8")
    assert "api/authorization.py" in text
    roles_line = text[text.index("\nRoles: ") :].split("\n\n", 1)[0]
    named = set(re.findall(r"`([a-z_]+)`", roles_line))
    named.discard("team_id")
    named.discard("partner_id")
    assert named == set(ROLES)


def test_a_role_outside_the_table_is_refused_everywhere(api: Api) -> None:
    app = api.client.app
    assert isinstance(app, FastAPI)
    # Admin too: some operations (contact, notes, lookup by phone) are refused to it.
    headers: dict[str, dict[str, str]] = {"admin": api.admin}
    for role in ROLES:
        if role == "admin":
            continue
        partner = "partner-authz" if role == "channel_agent" else None
        projects = (
            [api.project] if role in ("manager", "supervisor", "consultant", "finance") else None
        )
        headers[role] = api.principal(role, project_ids=projects, partner_id=partner)[1]
    assert set(headers) == set(ROLES)
    checked = 0
    failures: list[tuple[str, str, str, int, str]] = []
    for (path, method), name in sorted(_operations(app).items()):
        allowed = TABLE[name].roles
        if allowed is None:
            continue
        url = re.sub(r"\{project_id\}", api.project, path)
        url = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), url)
        for role in sorted(set(ROLES) - set(allowed)):
            response = api.client.request(method.upper(), url, headers=headers[role])
            checked += 1
            body = response.json() if response.status_code in (403, 404) else {}
            if response.status_code != 403 or body.get("status") != 403:
                failures.append((method, path, role, response.status_code, response.text[:200]))
    assert not failures, failures
    assert checked > 100  # the generated cases really ran


def test_public_operations_and_docs_need_no_key(api: Api) -> None:
    for path in ("/healthz", "/v1/receipts/keys", "/docs", "/redoc", "/openapi.json"):
        assert api.client.get(path).status_code == 200, path
    assert api.client.get("/v1/views/status").status_code == 401
