"""Prometheus metrics: the API's /metrics, and each worker process on its own port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import Api


def _sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start!r} in:\n{text}")


def test_api_metrics_count_requests_by_route_template_and_show_the_loops(api: Api) -> None:
    client_id = str(uuid.uuid4())
    assert api.client.get(f"/v1/clients/{client_id}", headers=api.admin).status_code == 404
    assert api.client.get("/healthz").status_code == 200
    assert api.client.get("/no/such/path").status_code == 404

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = api.client.get("/v1/views/status", headers=api.admin).json()
        loops = {loop["loop"]: loop for loop in status["loops"]}
        if all(loop["last_success"] for loop in loops.values()):
            break
        time.sleep(0.05)
    assert sorted(loops) == ["deadlines", "notify", "views"]
    assert all(loop["last_error"] is None for loop in loops.values())
    assert all(loop["last_success"] for loop in loops.values())

    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    route = 'route="/v1/clients/{client_id}"'
    assert _sample(text, f'yingke_http_requests_total{{method="GET",{route},status="404"}}') == 1
    assert client_id not in text  # a label per id would grow without bound
    assert _sample(text, 'yingke_http_requests_total{method="GET",route="/healthz",status="200"}')
    assert _sample(text, 'yingke_http_requests_total{method="GET",route="unmatched",status="404"}')
    assert 'yingke_http_request_duration_seconds_bucket{le="0.005",method="GET"' in text
    assert _sample(text, 'yingke_loop_runs_total{loop="views"}') >= 1
    assert _sample(text, 'yingke_loop_last_success_timestamp_seconds{loop="deadlines"}') > 0
    assert _sample(text, 'yingke_loop_failing{loop="views"}') == 0
    assert _sample(text, 'yingke_view_lag{view="client_overview"}') >= 0
    assert _sample(text, "yingke_events_head ") >= 0
    # Instruments of the other processes are present too, at zero: one registry shape.
    assert _sample(text, "yingke_relay_published_total ") == 0
    assert _sample(text, "yingke_reminders_dead_lettered_total ") == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "loop", "by_flag"),
    [("projections", "views", True), ("deadlines", "deadlines", False)],
)
def test_a_worker_process_serves_its_metrics_on_the_port_it_was_given(
    tmp_path: Path, command: str, loop: str, by_flag: bool
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINGKE_")}
    env["YINGKE_DATA_DIR"] = str(tmp_path / "var")
    args = [str(Path(sys.executable).with_name("yingke")), command]
    if by_flag:
        args += ["--metrics-port", str(port)]
    else:
        env["YINGKE_METRICS_PORT"] = str(port)
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        text = ""
        ran = f'yingke_loop_runs_total{{loop="{loop}"}}'
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and ran not in text:
            if process.poll() is not None:
                pytest.fail(f"{command} exited: {process.communicate()[0]}")
            with contextlib.suppress(httpx.TransportError):
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
            time.sleep(0.2)
        assert _sample(text, f'yingke_loop_runs_total{{loop="{loop}"}}') >= 1
        assert _sample(text, f'yingke_loop_last_success_timestamp_seconds{{loop="{loop}"}}') > 0
        assert _sample(text, 'yingke_view_position{view="report_log"}') >= 0
        assert _sample(text, "yingke_events_head ") >= 0
        assert "yingke_deadlines_fired_total" in text
    finally:
        process.terminate()
        try:
            output = process.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate(timeout=5)[0]
    assert f"metrics on http://127.0.0.1:{port}/metrics" in output
    assert "Traceback" not in output
