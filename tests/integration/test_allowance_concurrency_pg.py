"""The per-principal allowances under real concurrency on PostgreSQL, over HTTP.

One principal sends N requests released by one barrier when its allowance has room for
fewer: exactly the room passes, the rest are 429 with the allowance's code and a
Retry-After, and every one that passed is on the record (allowance, buyer's stream,
audit views). Without a reachable server these tests skip locally and fail on CI.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventsourcing.persistence import IntegrityError

from domain.allowance import DISCLOSURE, IMPORT, LOOKUP, Allowance, allowance_id, window_of
from domain.client import Client
from tests.conftest import PG_WAIT
from tests.http.conftest import Api, make_api

pytestmark = pytest.mark.postgres

THREADS = 16
CAP = 5
PHONE = "13764472345"


@pytest.fixture
def pg_http(pg_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(
        tmp_path,
        {
            "YINGKE_DATABASE_URL": pg_url,
            "YINGKE_PG_CONNECT_TIMEOUT": PG_WAIT,
            "YINGKE_PG_POOL_SIZE": "20",
            "YINGKE_DISCLOSURES_PER_DAY": str(CAP),
            "YINGKE_LOOKUPS_PER_HOUR": str(CAP),
            "YINGKE_IMPORT_CLASHES_PER_DAY": str(CAP),
        },
    )


class Collisions:
    """Counts optimistic-concurrency failures: proof that the requests really raced."""

    def __init__(self, api: Api) -> None:
        self.count = 0
        lock = threading.Lock()
        save = api.container.store.save

        def counting_save(*aggregates: Any, **kwargs: Any) -> Any:
            try:
                return save(*aggregates, **kwargs)
            except IntegrityError:
                with lock:
                    self.count += 1
                raise

        setattr(api.container.store, "save", counting_save)  # noqa: B010


def all_at_once(request: Callable[[], httpx.Response]) -> list[httpx.Response]:
    barrier = threading.Barrier(THREADS)

    def run(_: int) -> httpx.Response:
        barrier.wait(timeout=30)
        return request()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


def owned_buyer(api: Api) -> tuple[str, dict[str, str], str]:
    owner_id, owner = api.principal("consultant", project_ids=[api.project])
    visit = {
        "project_id": api.project,
        "phone": PHONE,
        "client_name": "王小明",
        "consultant_id": owner_id,
    }
    response = api.client.post("/v1/visits", json=visit, headers=owner)
    assert response.status_code == 201, response.text
    return owner_id, owner, response.json()["client_id"]


def refused(responses: list[httpx.Response], code: str) -> None:
    for response in responses:
        assert response.status_code == 429, response.text
        assert response.json()["code"] == code
        assert int(response.headers["Retry-After"]) >= 1


def test_concurrent_disclosures_pass_exactly_up_to_the_daily_cap(pg_http: Api) -> None:
    api = pg_http
    owner_id, owner, client_id = owned_buyer(api)
    collisions = Collisions(api)

    responses = all_at_once(
        lambda: api.client.get(f"/v1/clients/{client_id}/contact", headers=owner)
    )

    assert Counter(r.status_code for r in responses) == {200: CAP, 429: THREADS - CAP}
    assert {r.json()["phone"] for r in responses if r.status_code == 200} == {PHONE}
    refused([r for r in responses if r.status_code != 200], "disclosure_limit")
    assert collisions.count > 0
    # Nothing lost: every disclosure that answered is counted and on the buyer's record.
    uow = api.container.store
    window, _ = window_of(DISCLOSURE, api.clock.now)
    allowance: Any = uow.repository.get(allowance_id(DISCLOSURE, owner_id, window))
    assert isinstance(allowance, Allowance) and allowance.used == CAP
    buyer = uuid.UUID(client_id)
    disclosed = [e for e in uow.events.get(buyer) if isinstance(e, Client.ContactDisclosed)]
    assert len(disclosed) == CAP
    served = {r.headers["X-Request-ID"] for r in responses if r.status_code == 200}
    assert {getattr(e, "correlation_id", None) for e in disclosed} == served
    api.container.follower.catch_up()
    rows = api.container.views.query(
        "SELECT request_id FROM contact_disclosures WHERE client_id = %s", (client_id,)
    )
    assert {r[0] for r in rows} == served


def test_concurrent_lookups_pass_exactly_up_to_the_hourly_cap(pg_http: Api) -> None:
    api = pg_http
    owner_id, owner, client_id = owned_buyer(api)
    collisions = Collisions(api)
    body = {"project_id": api.project, "phone": PHONE}

    responses = all_at_once(lambda: api.client.post("/v1/clients/lookup", json=body, headers=owner))

    assert Counter(r.status_code for r in responses) == {200: CAP, 429: THREADS - CAP}
    assert {r.json()["client_id"] for r in responses if r.status_code == 200} == {client_id}
    refused([r for r in responses if r.status_code != 200], "lookup_limit")
    assert collisions.count > 0
    window, _ = window_of(LOOKUP, api.clock.now)
    allowance: Any = api.container.store.repository.get(allowance_id(LOOKUP, owner_id, window))
    assert isinstance(allowance, Allowance) and allowance.used == CAP
    api.container.follower.catch_up()
    rows = api.container.views.query(
        "SELECT request_id, outcome FROM lookup_audit WHERE principal_id = %s", (owner_id,)
    )
    # Every lookup is on record: the served ones found the buyer, the refused ones are
    # recorded as limited (and counted against nothing).
    served = {r.headers["X-Request-ID"] for r in responses if r.status_code == 200}
    limited = {r.headers["X-Request-ID"] for r in responses if r.status_code == 429}
    assert {r[0] for r in rows if r[1] == "found"} == served
    assert {r[0] for r in rows if r[1] == "limited"} == limited
    assert len(rows) == len(responses)


def test_concurrent_imports_name_exactly_as_many_buyers_already_here_as_the_daily_cap(
    pg_http: Api,
) -> None:
    # Each dry run names the one buyer already here: the day's cap of clashes lets
    # exactly CAP of them answer; the others are 429 and name no row.
    api = pg_http
    client_id = owned_buyer(api)[2]
    manager_id, manager = api.principal("manager", project_ids=[api.project])
    consultant = api.principal("consultant", project_ids=[api.project])[0]
    register = f"姓名,手机,置业顾问\n张三,{PHONE},{consultant}\n".encode()
    path = f"/v1/projects/{api.project}/clients:import?dry_run=true"
    headers = {**manager, "Content-Type": "text/csv"}
    collisions = Collisions(api)

    responses = all_at_once(lambda: api.client.post(path, content=register, headers=headers))

    assert Counter(r.status_code for r in responses) == {200: CAP, 429: THREADS - CAP}
    refused([r for r in responses if r.status_code != 200], "import_limit")
    for response in responses:
        assert (PHONE[-4:] in response.text) == (response.status_code == 200)
    assert collisions.count > 0
    window, _ = window_of(IMPORT, api.clock.now)
    allowance: Any = api.container.store.repository.get(allowance_id(IMPORT, manager_id, window))
    assert isinstance(allowance, Allowance) and allowance.used == CAP
    api.container.follower.catch_up()
    rows = api.container.views.query(
        "SELECT request_id, outcome, client_id FROM lookup_audit "
        "WHERE principal_id = %s AND via = 'import'",
        (manager_id,),
    )
    served = {r.headers["X-Request-ID"] for r in responses if r.status_code == 200}
    limited = {r.headers["X-Request-ID"] for r in responses if r.status_code == 429}
    assert {r[0] for r in rows if r[1] == "found"} == served
    assert {r[2] for r in rows if r[1] == "found"} == {client_id}
    assert {r[0] for r in rows if r[1] == "checked"} == served
    assert {r[0] for r in rows if r[1] == "limited"} == limited
