"""The README's run command for real: `yingke serve` as a process, called over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import wait_for_server

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
