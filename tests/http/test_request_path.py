"""The request path: what is answered without a worker thread, and what still waits for
the store (a key revoked before a request arrived never passes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

import api.authorization
import api.deps
from api import authorization as authorization_module
from api import deps as deps_module
from api import problems as problems_module
from api.deps import Caller, get_caller
from api.routers import reports as reports_module
from tests.http.conftest import Api
from tests.support import ctx


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions sent to a worker thread by authentication and the access check."""
    sent: list[str] = []
    real = run_in_threadpool

    async def counting(func: Callable[..., Any], *args: Any) -> Any:
        sent.append(func.__name__)
        return await real(func, *args)

    monkeypatch.setattr(api.deps, "run_in_threadpool", counting)
    monkeypatch.setattr(api.authorization, "run_in_threadpool", counting)
    return sent


def authenticate(api: Api, key: str) -> Caller:
    """``get_caller`` as a request runs it."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/views/status",
        "headers": [],
        "app": api.client.app,
        "state": {"request_id": "test"},
    }
    return asyncio.run(get_caller(Request(scope), f"Bearer {key}"))


def agent_key(api: Api) -> tuple[str, str]:
    pid, headers = api.principal("channel_agent", partner_id="partner-1")
    return pid, headers["Authorization"].removeprefix("Bearer ")


def test_a_key_revoked_before_the_request_arrived_is_refused_though_a_copy_was_kept(
    api: Api, hops: list[str]
) -> None:
    pid, key = agent_key(api)
    assert api.container.principals.authenticate(key) is not None
    api.container.principals.revoke_principal(ctx(), pid, "left the agency")
    with pytest.raises(HTTPException) as refused:
        authenticate(api, key)
    assert refused.value.status_code == 401
    assert hops == ["authenticate"]


def test_a_project_in_the_path_is_judged_without_a_thread(api: Api, hops: list[str]) -> None:
    _, granted = api.principal("manager", project_ids=[api.project])
    assert api.client.get(f"/v1/projects/{api.project}/policy", headers=api.admin).is_success
    hops.clear()
    assert api.client.get(f"/v1/projects/{api.project}/policy", headers=granted).is_success
    refused = api.client.get("/v1/projects/elsewhere/policy", headers=granted)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "check_path" not in hops


def test_the_request_id_is_echoed_or_made(api: Api) -> None:
    given = api.client.get("/healthz", headers={"X-Request-ID": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    made = api.client.get("/healthz", headers={"X-Request-ID": "not valid!"})
    assert made.headers["x-request-id"] not in ("", "not valid!")
    assert len(made.headers["x-request-id"]) == 36


def test_healthz_is_answered_without_a_worker_thread(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fastapi.routing

    sent: list[str] = []
    real = run_in_threadpool

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        sent.append(func.__name__)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "run_in_threadpool", counting)
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert sent == []


class CountingRecorder:
    """The kept copies' view of the recorder, counting their catch-up queries."""

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder
        self.queries = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._recorder, name)
        if name in ("watched_since", "max_notification_id"):
            self.queries += 1
        return attr


def test_a_report_catches_the_kept_copies_up_once(api: Api) -> None:
    pid, headers = api.principal("channel_agent", partner_id="partner-1")
    body = {
        "project_id": api.project,
        "partner_id": "partner-1",
        "agent_id": pid,
        "client_name": "王小明",
        "phone": "13800138000",
    }
    watched = api.container.principals.watched
    counting = CountingRecorder(watched._recorder)
    watched._recorder = counting
    # Authentication's catch-up also serves the policy read: both are owed the log as of
    # the request's arrival.
    assert api.client.post("/v1/reports", json=body, headers=headers).status_code == 201
    assert counting.queries == 1


def test_a_read_after_the_requests_own_write_sees_it(api: Api) -> None:
    from domain.services.uow import READER_ARRIVED

    policies = api.container.policies
    assert policies.policy_for(api.project).version == 0
    token = READER_ARRIVED.set(time.monotonic())  # as inside a request
    try:
        assert policies.policy_for(api.project).version == 0  # caught up after arrival
        policies.set_policy(ctx(), api.project, {"protection": "P7D"})
        assert policies.policy_for(api.project).version == 1
    finally:
        READER_ARRIVED.reset(token)


def report_of(api: Api, agent_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "project_id": api.project,
        "partner_id": "partner-1",
        "agent_id": agent_id,
        "client_name": "王小明",
        "phone": "13800138000",
        **extra,
    }


def test_a_report_is_filed_in_one_hop_to_a_worker_thread(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fastapi.routing

    sent: list[str] = []
    real = run_in_threadpool

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    real_worker = deps_module.in_worker

    async def counting_worker(work: Callable[[], Any]) -> Any:
        sent.append("in_worker")
        return await real_worker(work)

    for module in (fastapi.routing, deps_module, authorization_module, problems_module):
        monkeypatch.setattr(module, "run_in_threadpool", counting, raising=False)
    monkeypatch.setattr(reports_module, "in_worker", counting_worker, raising=False)
    pid, headers = api.principal("channel_agent", partner_id="partner-1")
    sent.clear()
    filed = api.client.post("/v1/reports", json=report_of(api, pid), headers=headers)
    assert filed.status_code == 201, filed.text
    # Authentication waits for the endpoint's hop instead of making one of its own.
    assert len(sent) == 1


def test_a_failing_key_is_refused_before_anything_else_wrong_with_a_report(api: Api) -> None:
    pid, headers = api.principal("channel_agent", partner_id="partner-1")
    _, auditor = api.principal("auditor")
    bad_body = report_of(api, pid, phone="", surplus=1)
    bad_key = {"Idempotency-Key": "not valid"}
    api.container.principals.revoke_principal(ctx(), pid, "left the agency")
    for sent_headers, body in (
        (headers, report_of(api, pid)),
        (headers, bad_body),
        ({**headers, **bad_key}, report_of(api, pid)),
        (api.auth("yk1.bm9ib2R5.not-a-real-key"), bad_body),
        ({}, bad_body),
    ):
        refused = api.client.post("/v1/reports", json=body, headers=sent_headers)
        assert refused.status_code == 401, (sent_headers, body, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["code"] == "unauthenticated"
    for body, extra in ((bad_body, {}), (report_of(api, pid), bad_key)):
        forbidden = api.client.post("/v1/reports", json=body, headers={**auditor, **extra})
        assert forbidden.status_code == 403, forbidden.text
        assert forbidden.json()["code"] == "forbidden"


def test_an_admitted_caller_still_gets_field_errors_and_idempotency(api: Api) -> None:
    pid, headers = api.principal("channel_agent", partner_id="partner-1")
    invalid = api.client.post("/v1/reports", json=report_of(api, pid, phone="1"), headers=headers)
    assert invalid.status_code == 422
    assert [e["field"] for e in invalid.json()["errors"]] == ["phone"]
    bad_key = api.client.post(
        "/v1/reports", json=report_of(api, pid), headers={**headers, "Idempotency-Key": "a b"}
    )
    assert bad_key.status_code == 400
    once = {**headers, "Idempotency-Key": "report-1", "X-Request-ID": "trace-7"}
    first = api.client.post("/v1/reports", json=report_of(api, pid), headers=once)
    again = api.client.post("/v1/reports", json=report_of(api, pid), headers=once)
    assert first.status_code == again.status_code == 201
    assert first.headers["x-request-id"] == "trace-7"
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["report_id"] == first.json()["report_id"]
    for admin in (first, again):
        assert "receipt" in admin.json()
    as_admin = api.client.post(
        "/v1/reports", json=report_of(api, pid, phone="13900139000"), headers=api.admin
    )
    assert as_admin.status_code == 201, as_admin.text
