"""HTTP fixtures: the real ASGI app over a real store, driven by httpx's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.support import FakeClock, unique
from yingke.bootstrap import Container, build
from yingke.settings import load_settings

ADMIN_KEY = "test-admin-key-0123456789"
READ_WAIT = "60"


@dataclass
class Api:
    client: TestClient
    container: Container
    clock: FakeClock
    project: str

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.auth(ADMIN_KEY)

    def principal(
        self,
        role: str,
        project_ids: list[str] | None = None,
        partner_id: str | None = None,
        principal_id: str | None = None,
    ) -> tuple[str, dict[str, str]]:
        """Register a principal; return its id and ready-made auth headers."""
        pid = principal_id or unique(role)
        body: dict[str, Any] = {"id": pid, "role": role}
        if project_ids is not None:
            body["project_ids"] = project_ids
        if partner_id is not None:
            body["partner_id"] = partner_id
        response = self.client.post("/v1/principals", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return pid, self.auth(response.json()["key"])


def make_api(tmp_path: Path, extra_env: dict[str, str] | None = None) -> Iterator[Api]:
    env = {
        "YINGKE_DATA_DIR": str(tmp_path),
        "YINGKE_ADMIN_KEY": ADMIN_KEY,
        "YINGKE_SECRET": "test-secret-0123456789abcdef",
        # Reads pass ?after=<position>; on a loaded machine the background follower may
        # need far longer than the production default of 2 s to get there. The wait ends
        # as soon as the views arrive, so a generous bound costs nothing when all is well.
        "YINGKE_READ_WAIT": READ_WAIT,
        **(extra_env or {}),
    }
    clock = FakeClock()
    container = build(load_settings(env), clock=clock)
    container.start_workers()  # as `yingke serve` does: views follow, deadlines fire
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield Api(client, container, clock, unique("proj"))
    container.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(tmp_path)
