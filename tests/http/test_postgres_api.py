"""The API against PostgreSQL: the main flow, and a store that goes away."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.http.conftest import Api, make_api
from tests.support import wait_until

pytestmark = pytest.mark.postgres

SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
def own_database() -> Iterator[str]:
    """A database of this test's own, so it can be cut off without hurting others."""
    name = f"yingke_down_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{SERVER}/test", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def pg_api(tmp_path: Path, database: str) -> Iterator[Api]:
    from yingke.bootstrap import migrate
    from yingke.settings import load_settings

    env = {
        "YINGKE_DATABASE_URL": f"{SERVER}/{database}",
        "YINGKE_SECRET": "test-secret-0123456789abcdef",
        "YINGKE_ADMIN_KEY": "test-admin-key-0123456789",
        "YINGKE_PG_CONNECT_TIMEOUT": "1",
    }
    migrate(load_settings(env))
    yield from make_api(tmp_path, env)


def test_reports_and_visits_work_on_postgresql(tmp_path: Path, own_database: str) -> None:
    for api in pg_api(tmp_path, own_database):
        a_id, a = api.principal("channel_agent", partner_id="partner-a")
        c_id, c = api.principal("consultant", project_ids=[api.project])
        body = {
            "project_id": api.project,
            "partner_id": "partner-a",
            "agent_id": a_id,
            "client_name": "李雷",
            "phone": "13912345678",
        }
        filed = api.client.post("/v1/reports", json=body, headers=a)
        assert filed.status_code == 201 and filed.json()["status"] == "accepted"
        visit = api.client.post(
            "/v1/visits",
            json={
                "project_id": api.project,
                "phone": "139 1234 5678",
                "client_name": "李雷",
                "consultant_id": c_id,
            },
            headers=c,
        )
        assert visit.status_code == 201
        assert visit.json()["owner"]["report_id"] == filed.json()["report_id"]
        history = api.client.get(f"/v1/clients/{visit.json()['client_id']}/history", headers=c)
        assert "OwnershipAwarded" in [e["type"] for e in history.json()["events"]]
        fetched = api.client.get(f"/v1/reports/{filed.json()['report_id']}", headers=a)
        assert fetched.json()["status"] == "confirmed"


def _ready(api: Api) -> Callable[[], bool]:
    return lambda: api.client.get("/readyz").status_code == 200


def test_a_store_that_goes_away_gives_503_not_a_stack_trace(
    tmp_path: Path, own_database: str
) -> None:
    for api in pg_api(tmp_path, own_database):
        api.principal("channel_agent", partner_id="partner-a")
        wait_until(_ready(api), 120, "/readyz to answer")
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{own_database}" WITH ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (own_database,),
            )
        down = api.client.get("/readyz")
        assert down.status_code == 503, down.text
        assert down.headers["content-type"] == "application/problem+json"
        assert down.json()["code"] == "store_unavailable"
        assert "Traceback" not in down.text
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{own_database}" WITH ALLOW_CONNECTIONS true')
        # The store guard notices at its next probe (every half second while down).
        deadline = time.monotonic() + 120
        while api.client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the service did not come back by itself"
            time.sleep(0.1)


def test_the_receipt_taken_from_a_group_commit_is_the_one_read_back(
    tmp_path: Path, own_database: str
) -> None:
    from tests.http.test_integrity_api import _receipt_of_a_repeated_report

    for api in pg_api(tmp_path, own_database):
        fresh, replayed = _receipt_of_a_repeated_report(api)
        assert fresh == replayed
        verified = api.client.post("/v1/receipts/verify", json={"receipt": fresh}).json()
        assert verified["valid"] and verified["in_chain"]
