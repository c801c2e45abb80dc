"""The README's run command for real: `yingke serve` as a process, called over TCP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_ADMIN_KEY, TEST_SECRET
from tests.support import SERVER_START_BOUND, wait_for_server, wait_until
from yingke.settings import Settings

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINGKE_")}
    env.update({"YINGKE_DATA_DIR": str(tmp_path / "var"), "YINGKE_PORT": str(port)})
    yingke = Path(sys.executable).with_name("yingke")
    process = subprocess.Popen(
        [str(yingke), "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_server(process, base)
    yield base, tmp_path / "var", process
    process.terminate()
    process.wait(timeout=10)


def test_serve_prints_where_it_listens_and_the_admin_key_it_generated(
    server: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base, data_dir, process = server
    admin_key = (data_dir / "admin.key").read_text().strip()
    assert (data_dir / "secret.key").exists() and (data_dir / "yingke.sqlite3").exists()
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        created = http.post(
            "/v1/principals", json={"id": "c-1", "role": "consultant", "project_ids": ["demo"]}
        )
        assert created.status_code == 201
        visit = http.post(
            "/v1/visits",
            json={
                "project_id": "demo",
                "phone": "13800001111",
                "client_name": "赵六",
                "consultant_id": "c-1",
            },
        )
        assert visit.status_code == 201 and visit.json()["owner"]["basis"] == "walk_in"
        assert http.get("/docs").status_code == 200
    process.terminate()
    output = process.communicate(timeout=10)[0]
    assert base in output and admin_key in output


@pytest.mark.postgres
def test_serve_with_several_workers_on_postgresql_files_and_reads_back(
    pg_settings: Settings, tmp_path: Path
) -> None:
    """`serve --workers 2`: two HTTP processes on one port, one event writer each; a
    report filed through one is read back (the follower runs in the supervisor, whose
    loops show on the metrics port and, from the shared table, in /v1/views/status)."""
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINGKE_")}
    env.update(
        {
            "YINGKE_DATABASE_URL": str(pg_settings.database_url),
            "YINGKE_DATA_DIR": str(tmp_path / "var"),
            "YINGKE_SECRET": TEST_SECRET,
            "YINGKE_ADMIN_KEY": TEST_ADMIN_KEY,
            "YINGKE_PORT": str(port),
            "YINGKE_PG_POOL_SIZE": "2",
            "YINGKE_METRICS_PORT": str(metrics_port),
        }
    )
    yingke = Path(sys.executable).with_name("yingke")
    process = subprocess.Popen(
        [str(yingke), "serve", "--workers", "2", "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_BOUND
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            process.kill()
            pytest.fail(f"server did not start: {process.communicate()[0]}")
        admin = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}
        with httpx.Client(base_url=base, timeout=30) as client:
            made = client.post(
                "/v1/principals",
                json={"id": "agent-w", "role": "channel_agent", "partner_id": "partner-w"},
                headers=admin,
            )
            assert made.status_code == 201, made.text
            agent = {"Authorization": f"Bearer {made.json()['key']}"}
            # Several requests: with keep-alive off they spread over both processes.
            for n in range(4):
                filed = client.post(
                    "/v1/reports",
                    json={
                        "project_id": "proj-workers",
                        "partner_id": "partner-w",
                        "agent_id": "agent-w",
                        "client_name": "张三",
                        "phone": f"1381234000{n}",
                    },
                    headers={**agent, "Connection": "close"},
                )
                assert filed.status_code == 201, filed.text
                assert filed.json()["status"] == "accepted"
                read = client.get(f"/v1/reports/{filed.json()['report_id']}", headers=agent)
                assert read.status_code == 200, read.text
        # No HTTP process runs a loop; the supervisor's are on its own metrics port.
        views = 'yingke_loop_runs_total{loop="views"}'
        deadlines = 'yingke_loop_runs_total{loop="deadlines"}'
        text = ""
        deadline = time.monotonic() + SERVER_START_BOUND
        while not (_sample(text, views) >= 1 and _sample(text, deadlines) >= 1):
            assert time.monotonic() < deadline, text
            with contextlib.suppress(httpx.TransportError):
                text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            time.sleep(0.2)
        assert _sample(text, 'yingke_view_position{view="report_log"}') >= 1
        # ...and, through the shared yingke_loop_status table, in any HTTP process's status.
        supervisor = f"{socket.gethostname()}:{process.pid}"

        def supervisor_loops() -> dict[str, dict[str, object]]:
            answer = httpx.get(f"{base}/v1/views/status", headers=admin, timeout=30)
            assert answer.status_code == 200, answer.text
            loops = answer.json()["loops"]
            return {loop["loop"]: loop for loop in loops if loop["process"] == supervisor}

        wait_until(
            lambda: all(
                supervisor_loops().get(loop, {}).get("last_success")
                for loop in ("views", "deadlines")
            ),
            SERVER_START_BOUND,
            "the supervisor's loops in /v1/views/status",
        )
        shown = supervisor_loops()
        for loop in ("views", "deadlines"):
            assert shown[loop]["last_success"] and shown[loop]["last_error"] is None, shown
            assert shown[loop]["stale"] is False, shown
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def _sample(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
