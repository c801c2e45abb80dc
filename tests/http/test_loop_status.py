"""Every loop of every process in /v1/views/status and /metrics, from yingke_loop_status."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from projections.runtime import Loop, SQLiteViewDB
from tests.conftest import TEST_ADMIN_KEY, TEST_SECRET
from tests.http.conftest import Api
from tests.support import SERVER_START_BOUND, wait_until
from yingke import loop_status
from yingke.bootstrap import Container, build
from yingke.metrics import Metrics
from yingke.settings import Settings


def _loops(api: Api) -> list[dict[str, Any]]:
    response = api.client.get("/v1/views/status", headers=api.admin)
    assert response.status_code == 200, response.text
    loops: list[dict[str, Any]] = response.json()["loops"]
    return loops


def _loop(loops: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((loop for loop in loops if loop["loop"] == name), None)


def test_a_failing_step_shows_its_error_in_the_status_and_the_metrics_until_it_recovers(
    api: Api,
) -> None:
    broken = threading.Event()
    broken.set()

    def step() -> int:
        if broken.is_set():
            raise RuntimeError("the broker said no")
        return 0

    loop = Loop("probe", step, 0.05, api.container.metrics)
    api.container.loops.append(loop)  # stopped with the container
    loop.start()

    def failing() -> dict[str, Any] | None:
        shown = _loop(_loops(api), "probe")
        return shown if shown and shown["last_error"] else None

    wait_until(failing, 30, "the failing loop in the status")
    shown = failing()
    assert shown is not None
    assert "the broker said no" in shown["last_error"]
    assert shown["last_error_at"] and shown["last_success"] is None
    assert shown["errors"] >= 1 and shown["runs"] == 0
    assert shown["process"] == loop_status.process_identity() and shown["stale"] is False
    # A channel (or a consultant) learns that the loop fails, not the driver's words or
    # which host runs it.
    _, agent = api.principal("channel_agent", [api.project], partner_id="p-status")
    _, consultant = api.principal("consultant", [api.project])
    for outsider in (agent, consultant):
        seen = api.client.get("/v1/views/status", headers=outsider)
        assert seen.status_code == 200, seen.text
        told = _loop(seen.json()["loops"], "probe")
        assert told is not None and told["last_error"] == "failed" and told["process"] is None
        assert "broker said" not in seen.text and loop_status.process_identity() not in seen.text
    metrics = api.client.get("/metrics").text
    labels = f'loop="probe",process="{loop_status.process_identity()}"'
    assert f"yingke_loop_status_failing{{{labels}}} 1.0" in metrics
    assert f"yingke_loop_status_last_error_timestamp_seconds{{{labels}}}" in metrics

    broken.clear()

    def recovered() -> bool:
        shown = _loop(_loops(api), "probe")
        return bool(shown and shown["last_error"] is None and shown["last_success"])

    wait_until(recovered, 30, "the loop's recovery in the status")
    assert f"yingke_loop_status_failing{{{labels}}} 0.0" in api.client.get("/metrics").text
    # The existing fields keep their meaning for the process's own loops.
    loops = _loops(api)
    assert {"views", "deadlines", "notify", "probe"} <= {loop["loop"] for loop in loops}


def test_a_row_not_updated_for_a_few_intervals_is_stale_and_stays_listed(api: Api) -> None:
    gone = loop_status.LoopStatus(api.container.views, process="gone-host:1")
    gone.record("views", ok=True, interval=0.2)
    row = next(r for r in loop_status.read(api.container.views) if r["process"] == "gone-host:1")
    assert row["stale"] is False
    later = row["updated_at"] + timedelta(seconds=loop_status.stale_after(0.2) + 1)
    again = loop_status.read(api.container.views, now=later)
    assert next(r for r in again if r["process"] == "gone-host:1")["stale"] is True
    # Seen through the API: backdate the row as a process that died long ago leaves it.
    with api.container.views.transaction() as tx:
        tx.execute(
            f"UPDATE {loop_status.TABLE} SET updated_at = %s WHERE process = %s",
            ("2020-01-01T00:00:00+00:00", "gone-host:1"),
        )
    shown = [loop for loop in _loops(api) if loop["process"] == "gone-host:1"]
    assert [(loop["loop"], loop["stale"]) for loop in shown] == [("views", True)]


def test_a_status_write_that_fails_is_counted_and_the_loop_runs_on(tmp_path: Path) -> None:
    # A views database without the table: every write fails, as if the database were away.
    views = SQLiteViewDB(tmp_path / "no-table.sqlite3")
    metrics = Metrics()
    metrics.report_to(loop_status.LoopStatus(views))
    steps: list[int] = []

    def step() -> int:
        steps.append(1)
        return 0

    loop = Loop("views", step, 0.01, metrics)
    loop.start()
    try:
        wait_until(lambda: len(steps) >= 3, 30, "three steps despite the failing writes")
    finally:
        loop.stop()
        views.close()
    assert loop.last_error is None and loop.last_success is not None
    assert metrics.status is not None and metrics.status.write_failures >= 1
    text = metrics.render().decode()
    assert "yingke_loop_status_write_failures_total 0.0" not in text
    assert "yingke_loop_status_write_failures_total" in text


@pytest.fixture
def pg_api(pg_settings: Settings) -> Iterator[tuple[TestClient, Container]]:
    """The API alone on PostgreSQL: it starts no loop itself, as with YINGKE_WORKERS=none."""
    container = build(pg_settings)
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield client, container
    container.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_separate_worker_process_loop_shows_in_the_api_status_on_postgresql(
    pg_settings: Settings, pg_api: tuple[TestClient, Container]
) -> None:
    client, container = pg_api
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINGKE_")}
    env.update(
        {
            "YINGKE_DATABASE_URL": str(pg_settings.database_url),
            "YINGKE_DATA_DIR": str(pg_settings.data_dir),
            "YINGKE_SECRET": TEST_SECRET,
            "YINGKE_ADMIN_KEY": TEST_ADMIN_KEY,
            "YINGKE_PG_POOL_SIZE": "2",
        }
    )
    yingke = Path(sys.executable).with_name("yingke")
    admin = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}
    workers = {
        name: subprocess.Popen(
            [str(yingke), name], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for name in ("deadlines", "projections")
    }
    processes = {name: f"{socket.gethostname()}:{process.pid}" for name, process in workers.items()}
    mine = {"deadlines": processes["deadlines"], "views": processes["projections"]}

    def rows() -> dict[str, dict[str, Any]]:
        response = client.get("/v1/views/status", headers=admin)
        assert response.status_code == 200, response.text
        return {
            loop["loop"]: loop
            for loop in response.json()["loops"]
            if mine.get(loop["loop"]) == loop["process"]
        }

    def both_ran() -> bool:
        for name, process in workers.items():
            if process.poll() is not None:
                output = process.communicate()[0].decode()
                raise AssertionError(f"{name} exited: {output}")
        shown = rows()
        return all(shown.get(loop, {}).get("last_success") for loop in mine)

    try:
        wait_until(both_ran, SERVER_START_BOUND, "both workers' loops in the API's status")
        shown = rows()
        for loop in mine:
            assert shown[loop]["last_error"] is None and shown[loop]["runs"] >= 1
            assert shown[loop]["stale"] is False
        metrics = client.get("/metrics").text
        assert (
            f'yingke_loop_status_stale{{loop="deadlines",process="{processes["deadlines"]}"}} 0.0'
            in metrics
        )
        # A worker that dies keeps its row, to turn stale; one stopped cleanly removes it.
        workers["deadlines"].send_signal(signal.SIGKILL)
        workers["projections"].terminate()
        for process in workers.values():
            process.wait(timeout=60)
        assert sorted(rows()) == ["deadlines"]
        views = container.views

        def dead(now: Any = None) -> dict[str, Any]:
            read = loop_status.read(views, now=now)
            return next(r for r in read if r["process"] == processes["deadlines"])

        interval = pg_settings.deadline_interval
        later = dead()["updated_at"] + timedelta(seconds=loop_status.stale_after(interval) + 1)
        assert dead(later)["stale"] is True
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
