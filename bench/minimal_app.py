"""The HTTP baseline: a minimal FastAPI app doing one INSERT per report, nothing else.

``bench.http_load`` serves it with the same uvicorn settings as ``yingke serve`` (same
number of processes, uvloop and httptools) and drives it with the same wrk script, so
the ratio between the two is what Yingke's own work costs. The table has a UNIQUE phone
column, as in ``bench.report_filing``'s raw-SQL scenario.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

TABLE = "minimal_reports"


class Report(BaseModel):
    project_id: str
    partner_id: str
    agent_id: str
    client_name: str
    phone: str


def create_app() -> FastAPI:
    pool = ConnectionPool(
        os.environ["BENCH_CONNINFO"], min_size=2, max_size=6, kwargs={"autocommit": True}
    )
    app = FastAPI()

    @app.post("/v1/reports", status_code=201)
    def file_report(report: Report) -> dict[str, Any]:
        with pool.connection() as conn:
            row = conn.execute(
                f"INSERT INTO {TABLE} (project_id, partner_id, phone) VALUES (%s, %s, %s) "
                "ON CONFLICT (phone) DO NOTHING RETURNING id",
                (report.project_id, report.partner_id, report.phone),
            ).fetchone()
        return {"status": "accepted" if row else "rejected", "id": row[0] if row else None}

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app
