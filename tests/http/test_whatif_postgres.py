"""The what-if job path on PostgreSQL, scaled: the replica that accepts a job runs it, and
another replica on the same database answers for it (job state lives in the database)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.http.conftest import Api
from tests.http.test_postgres_api import own_database, pg_api
from tests.http.test_whatif_api import scenario, settle

pytestmark = pytest.mark.postgres

__all__ = ["own_database"]  # the fixture, imported for pytest


def view_rows(api: Api) -> dict[str, int]:
    tables = [
        str(r[0])
        for r in api.container.views.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name NOT LIKE 'yingke%%' AND table_name <> 'jobs'"
        )
    ]
    return {t: int(api.container.views.query(f'SELECT COUNT(*) FROM "{t}"')[0][0]) for t in tables}


def test_a_job_runs_on_one_replica_and_is_read_on_another(
    tmp_path: Path, own_database: str
) -> None:
    for one in pg_api(tmp_path / "one", own_database):
        for other in pg_api(tmp_path / "other", own_database):
            other.project = one.project
            buyers = scenario(one)
            _, auditor = one.principal("auditor", project_ids=[one.project])
            settle(one)
            before = (one.container.store.recorder.max_notification_id(), view_rows(one))
            body = {
                "from": (one.clock() - timedelta(days=60)).isoformat(),
                "to": one.clock().isoformat(),
                "policy": {"overrides": {"protection": "P15D"}},
            }
            accepted = one.client.post(
                f"/v1/projects/{one.project}/what-if", json=body, headers=auditor
            )
            assert accepted.status_code == 202, accepted.text
            location = accepted.headers["Location"]
            seen: list[str] = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                job = other.client.get(location, headers=auditor)
                assert job.status_code == 200, job.text
                seen.append(job.json()["status"])
                if seen[-1] in ("done", "failed"):
                    break
                time.sleep(0.05)
            result = job.json()
            assert result["status"] == "done", result
            assert set(seen) <= {"queued", "running", "done"}
            assert result["result"]["released_earlier"] == sorted(
                [buyers["first"], buyers["second"]]
            )
            assert result["progress"] == {"done": 2, "total": 2}
            after = (one.container.store.recorder.max_notification_id(), view_rows(one))
            assert after == before
