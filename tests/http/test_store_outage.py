"""PostgreSQL going away for real, behind a TCP proxy the test cuts and restores.

Asserted: the behaviour (503 store_unavailable with Retry-After, /readyz not ready,
service back by itself, serve starting while the store is down). Timings are only
bounded generously; the measured figures are in the README.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient

from api.app import create_waiting_app
from tests.http.conftest import ADMIN_KEY, Api, make_api
from tests.support import unique
from tests.tcp_proxy import TcpProxy
from yingke.bootstrap import Container, build
from yingke.settings import load_settings

pytestmark = pytest.mark.postgres

GENEROUS = 5.0  # seconds: far above the figures measured, far below a hang


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(5432)
    yield proxy
    proxy.close()


def env_through(proxy: TcpProxy, pg_url: str, tmp_path: Path) -> dict[str, str]:
    database = urlparse(pg_url).path.lstrip("/")
    return {
        "YINGKE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}",
        "YINGKE_DATA_DIR": str(tmp_path),
        "YINGKE_SECRET": "test-secret-0123456789abcdef",
        "YINGKE_ADMIN_KEY": ADMIN_KEY,
    }


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def eventually(condition: Callable[[], bool], within: float = 120.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "the condition never held"
        time.sleep(0.05)
    return time.monotonic() - started


def report(api: Api) -> dict[str, str]:
    return {
        "project_id": api.project,
        "partner_id": "partner-a",
        "agent_id": "agent-1",
        "client_name": "李雷",
        "phone": "139" + str(time.monotonic_ns())[-8:],
    }


def assert_store_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "store_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


@pytest.fixture
def proxied_api(tmp_path: Path, pg_url: str, proxy: TcpProxy) -> Iterator[Api]:
    yield from make_api(tmp_path, env_through(proxy, pg_url, tmp_path))


def test_a_cut_store_answers_503_fast_and_service_resumes_by_itself(
    proxied_api: Api, proxy: TcpProxy
) -> None:
    api = proxied_api
    assert api.client.get("/readyz").status_code == 200
    filed = api.client.post("/v1/reports", json=report(api), headers=api.admin)
    assert filed.status_code == 201, filed.text

    proxy.cut()
    # The first write meets the broken pool; it must still answer, and with a 503.
    first, first_took = timed(
        lambda: api.client.post("/v1/reports", json=report(api), headers=api.admin)
    )
    assert_store_unavailable(first)
    assert first_took < GENEROUS
    noticed = eventually(lambda: not api.container.guard.available)
    ready, ready_took = timed(lambda: api.client.get("/readyz"))
    assert_store_unavailable(ready)
    assert ready_took < GENEROUS
    write, write_took = timed(
        lambda: api.client.post("/v1/reports", json=report(api), headers=api.admin)
    )
    assert_store_unavailable(write)
    assert write_took < GENEROUS
    assert api.client.get("/healthz").status_code == 200  # alive, only not ready

    proxy.restore()
    back = eventually(lambda: api.client.get("/readyz").status_code == 200)
    retried = api.client.post("/v1/reports", json=report(api), headers=api.admin)
    assert retried.status_code == 201, retried.text
    print(  # the README quotes these (pytest -s)
        f"\noutage: first write {first_took:.2f}s, guard open after {noticed:.2f}s, "
        f"readyz {ready_took:.3f}s, write {write_took:.3f}s; ready again {back:.2f}s "
        "after restore"
    )


def test_serve_started_while_the_store_is_down_waits_and_then_serves(
    tmp_path: Path, pg_url: str, proxy: TcpProxy
) -> None:
    proxy.cut()
    settings = load_settings(env_through(proxy, pg_url, tmp_path))
    with pytest.raises(Exception):  # noqa: B017 - whichever store error the driver raises
        build(settings)
    app = create_waiting_app(settings, lambda: build(settings))
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/healthz").status_code == 200
            assert_store_unavailable(client.get("/readyz"))
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            assert_store_unavailable(client.get("/v1/projects/demo/policy", headers=admin))

            proxy.restore()
            eventually(lambda: client.get("/readyz").status_code == 200)
            project = unique("proj")
            put = client.put(
                f"/v1/projects/{project}/policy", json={"protection": "P20D"}, headers=admin
            )
            assert put.status_code == 200, put.text
    finally:
        app.state.guard.stop()
        container: Container | None = app.state.container
        if container is not None:
            container.close()


def test_readyz_is_the_first_to_notice_and_answers_within_its_probe(
    proxied_api: Api, proxy: TcpProxy
) -> None:
    api = proxied_api
    assert api.client.get("/readyz").status_code == 200
    proxy.cut()
    ready, took = timed(lambda: api.client.get("/readyz"))
    assert_store_unavailable(ready)
    assert took < GENEROUS
    proxy.restore()
    eventually(lambda: api.client.get("/readyz").status_code == 200)
