"""A running `yingke serve` on the embedded default (SQLite, no Kafka) tells a person of
their overdue follow-up through a real local webhook, once, across a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.http.test_deadlines_e2e import free_port
from tests.receivers import Receiver, serving
from tests.support import wait_for_server, wait_until

pytestmark = pytest.mark.slow

ADMIN_KEY = "e2e-admin-key-0123456789"
PROJECT = "e2e-notify"


@contextmanager
def serve(data_dir: Path, webhook: str) -> Iterator[httpx.Client]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINGKE_")}
    env.update(
        {
            "YINGKE_DATA_DIR": str(data_dir),
            "YINGKE_PORT": str(port),
            "YINGKE_ADMIN_KEY": ADMIN_KEY,
            "YINGKE_NOTIFY_WEBHOOK": webhook,
            "YINGKE_REMINDER_TICK": "0.2",
            "YINGKE_DEADLINE_INTERVAL": "0.2",
            "YINGKE_FOLLOW_INTERVAL": "0.1",
        }
    )
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("yingke")), "serve", "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(process, base)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            yield http
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def notify_runs(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith('yingke_loop_runs_total{loop="notify"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def overdue(receiver: Receiver) -> list[str]:
    return [p.notification_id for p in receiver.about(PROJECT) if "跟进已逾期" in p.content]


def test_the_overdue_follow_up_reaches_the_person_once_across_a_restart(tmp_path: Path) -> None:
    with serving() as receiver:
        hook = f"{receiver.url}/mine"
        with serve(tmp_path / "var", f"{receiver.url}/group") as http:
            policy = {"first_follow_up": "PT3S", "protection": "P30D"}
            assert http.put(f"/v1/projects/{PROJECT}/policy", json=policy).status_code == 200
            body = {
                "id": "c-wang",
                "role": "consultant",
                "project_ids": [PROJECT],
                "display_name": "王晓",
                "notify_webhook": hook,
            }
            created = http.post("/v1/principals", json=body)
            assert created.status_code == 201, created.text
            consultant = {"Authorization": f"Bearer {created.json()['key']}"}
            visit = {
                "project_id": PROJECT,
                "phone": "13912345678",
                "client_name": "张三",
                "consultant_id": "c-wang",
            }
            made = http.post("/v1/visits", json=visit, headers=consultant)
            assert made.status_code == 201, made.text
            # due 3 s after the visit: the notifier posts once the deadline passes
            wait_until(lambda: overdue(receiver), timeout=60, message="the overdue notice")
        first = overdue(receiver)
        with serve(tmp_path / "var", f"{receiver.url}/group") as http:
            # Ten sweeps of the restarted sender (its loop counts them in /metrics): had
            # anything been due again, it would have been posted by then.
            wait_until(
                lambda: notify_runs(http) >= 10, timeout=60, message="ten sweeps of the sender"
            )
        assert overdue(receiver) == first and len(first) == 1
        (post,) = [p for p in receiver.posts if p.notification_id == first[0]]
        assert post.path == "/mine"  # the person's own webhook, not the group
        assert "置业顾问：王晓" in post.content
        assert "139****5678" in post.content and "13912345678" not in post.content
        assert receiver.delivered[first[0]] == 1
