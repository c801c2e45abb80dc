"""`yingke relay` and `yingke consume views|reminders` as the processes compose starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from consumers.views import ViewsConsumer, select_views
from tests.kafka.conftest import ADMIN_KEY, SECRET, ContainerFactory
from tests.kafka.test_relay import public_positions
from tests.support import (
    FakeClock,
    file_report,
    register_consultant,
    register_visit,
    wait_until,
)
from yingke import loop_status
from yingke.bootstrap import Container, all_views
from yingke.settings import Settings

pytestmark = pytest.mark.postgres


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def metric(port: int, sample: str) -> float:
    """One sample from a process's /metrics; 0 when the process has not reported it yet
    (or does not serve its metrics yet)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def start(
    command: list[str], settings: Settings, heartbeat: Path, metrics_port: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "YINGKE_DATABASE_URL": str(settings.database_url),
        "YINGKE_SECRET": SECRET,
        "YINGKE_ADMIN_KEY": ADMIN_KEY,
        "YINGKE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "YINGKE_KAFKA_TOPIC": settings.kafka_topic,
        "YINGKE_KAFKA_FAST_JOIN": "1",
        "YINGKE_HEARTBEAT_FILE": str(heartbeat),
        "YINGKE_REMINDER_DEAD_LETTER_TOPIC": f"{settings.kafka_topic}.dead",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "yingke.cli", *command, "--metrics-port", str(metrics_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_relay_and_consumers_run_as_processes_and_stop_on_sigterm(
    settings: Settings, containers: ContainerFactory, tmp_path: Path
) -> None:
    container = containers(FakeClock())
    consultant = register_consultant(container, "proj-proc")
    for i in range(5):
        file_report(container, "proj-proc", "pa", f"1384444000{i}")
        register_visit(container, "proj-proc", f"1384444000{i}", consultant, partner_id="pa")
    last = public_positions(container)[-1]
    beats = {name: tmp_path / f"{name}.alive" for name in ("relay", "views", "reminders")}
    ports = {name: free_port() for name in beats}
    processes = [
        start(["relay"], settings, beats["relay"], ports["relay"]),
        start(["consume", "views"], settings, beats["views"], ports["views"]),
        start(["consume", "reminders"], settings, beats["reminders"], ports["reminders"]),
    ]
    views = ViewsConsumer(container.views, select_views(all_views(), None))
    try:
        deadline = time.monotonic() + 120
        processed = 'yingke_consumer_processed_total{consumer="reminders"}'
        # The outbox is a view: `consume views` may build it before `consume reminders`
        # has joined its group; wait for both, the reminders process having read too.
        while (
            min(views.positions().values()) < last
            or scheduled(container) < 5 * 3
            or metric(ports["reminders"], processed) < 1
        ):
            assert time.monotonic() < deadline, [p.poll() for p in processes]
            time.sleep(0.2)
        assert all(beat.exists() for beat in beats.values())
        # Each process serves its own metrics: what it published, applied and scheduled.
        assert metric(ports["relay"], "yingke_relay_published_total") >= len(
            public_positions(container)
        )
        assert metric(ports["relay"], 'yingke_loop_runs_total{loop="relay"}') >= 1
        assert metric(ports["views"], 'yingke_consumer_processed_total{consumer="views"}') >= 1
        assert metric(ports["reminders"], processed) >= 1
        # And every process's loop is in the shared table the API's status reads.
        hosts = {f"{socket.gethostname()}:{p.pid}" for p in processes}

        def loops() -> set[str]:
            rows = loop_status.read(container.views)
            return {row["loop"] for row in rows if row["process"] in hosts and row["runs"]}

        expected = {"relay", "consume-views", "consume-reminders"}
        wait_until(lambda: loops() == expected, 120, lambda: f"{expected}, saw {loops()}")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=20)[0].decode() for process in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    # Stopped cleanly, they took their rows with them (a killed one would stay, stale).
    assert not [r for r in loop_status.read(container.views) if r["process"] in hosts]
    # due soon, overdue and protection ending per owned buyer, waiting their time
    assert scheduled(container) == 5 * 3


def scheduled(container: Container) -> int:
    found = container.views.query(
        "SELECT count(*) FROM notifications WHERE project_id = %s AND cancelled = %s",
        ("proj-proc", False),
    )
    return int(found[0][0])
