"""The HTTP ceiling: a minimal FastAPI app that stores a report's own rows, nothing else.

Beside ``bench.minimal_app`` (one INSERT per report) in ``bench.http_load``: the same
request body, server settings and wrk script, but each request writes what a first report
must store — 4 events on the buyer's and the locator's streams, their 4 chain rows under
the table lock, the buyer's subject key — through one group-commit writer per process
(``bench.store_ceiling.GroupWriter``), each batch one round trip (the conflict check,
inserts and chain in ``ceiling_append``, which ``bench.http_load`` installs first). No
domain code, no authentication, no sealing: the most any application that keeps Yingke's
store could answer (ADR 0075).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from bench.minimal_app import Report
from bench.store_ceiling import GroupWriter, report_rows
from domain.values import PhoneKeyer


def create_app() -> FastAPI:
    keyer = PhoneKeyer(os.environ["YINGKE_SECRET"].encode())
    writer = GroupWriter(os.environ["BENCH_DBNAME"], one_trip=True)
    app = FastAPI()

    @app.post("/v1/reports", status_code=201)
    def file_report(report: Report) -> dict[str, Any]:
        rows = writer.submit(report_rows(keyer, report.project_id, report.phone))
        if rows.refused:
            return {"status": "rejected", "id": None}
        return {"status": "accepted", "id": rows.ids[0]}

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app
