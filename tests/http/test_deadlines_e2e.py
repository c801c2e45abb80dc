"""Deadlines firing on their own in a running `yingke serve`, with durations of seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import wait_for_server

pytestmark = pytest.mark.slow

ADMIN_KEY = "e2e-admin-key-0123456789"
PROJECT = "e2e-demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINGKE_")}
    env.update(
        {
            "YINGKE_DATA_DIR": str(tmp_path / "var"),
            "YINGKE_PORT": str(port),
            "YINGKE_ADMIN_KEY": ADMIN_KEY,
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
    wait_for_server(process, base)
    try:
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def principal(http: httpx.Client, body: dict[str, Any]) -> dict[str, str]:
    created = http.post("/v1/principals", json=body)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


def types_of(http: httpx.Client, client_id: str) -> list[str]:
    response = http.get(f"/v1/clients/{client_id}/history")
    assert response.status_code == 200, response.text
    return [e["type"] for e in response.json()["events"]]


def test_report_and_protection_deadlines_fire_in_a_running_server(server: str) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=server, headers=admin, timeout=10) as http:
        consultant = principal(
            http, {"id": "c-e2e", "role": "consultant", "project_ids": [PROJECT]}
        )
        agent = principal(http, {"id": "a-e2e", "role": "channel_agent", "partner_id": "p-e2e"})
        policy = http.put(
            f"/v1/projects/{PROJECT}/policy",
            json={
                "report_validity": "PT2S",
                "protection": "PT3S",
                "protection_max": "PT4S",
                "inactivity_release": "PT3S",
                "first_follow_up": "PT1S",
            },
        )
        assert policy.status_code == 200, policy.text

        def report(phone: str) -> dict[str, Any]:
            filed = http.post(
                "/v1/reports",
                json={
                    "project_id": PROJECT,
                    "partner_id": "p-e2e",
                    "agent_id": "a-e2e",
                    "client_name": "周杰",
                    "phone": phone,
                },
                headers=agent,
            )
            assert filed.status_code == 201 and filed.json()["status"] == "accepted", filed.text
            body: dict[str, Any] = filed.json()
            return body

        # A report that is visited (owned, protected for 3 s) and one that never is
        visited = report("13600001111")
        unvisited = report("13600002222")
        visit = http.post(
            "/v1/visits",
            json={
                "project_id": PROJECT,
                "phone": "13600001111",
                "client_name": "周杰",
                "consultant_id": "c-e2e",
            },
            headers=consultant,
        )
        assert visit.status_code == 201, visit.text
        assert visit.json()["owner"]["basis"] == "report"
        owned_id, expiring_id = visited["client_id"], unvisited["client_id"]

        # Nothing has expired yet
        assert "ReportExpired" not in types_of(http, expiring_id)
        assert "ProtectionExpired" not in types_of(http, owned_id)

        # Then, with nobody calling anything, the deadlines fire within a few seconds
        wanted = {"ProtectionExpired", "ReleasedToPool"}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            owned, expiring = types_of(http, owned_id), types_of(http, expiring_id)
            if wanted <= set(owned) and "ReportExpired" in expiring:
                break
            time.sleep(0.25)
        else:
            pytest.fail(f"deadlines did not fire: {owned} / {expiring}")

        assert owned.count("ProtectionExpired") == 1 and owned.count("ReleasedToPool") == 1
        assert expiring.count("ReportExpired") == 1
        assert "ReportExpired" not in owned  # the visited report was confirmed, not expired
        as_of = http.get(f"/v1/clients/{owned_id}/ownership")
        assert as_of.status_code == 200
        assert as_of.json()["owner"]["status"] == "pool"
        assert as_of.json()["owner"]["basis"] == "expired"
        assert as_of.json()["decided_by"]["type"] == "ReleasedToPool"
