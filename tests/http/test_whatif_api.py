"""The what-if replay over HTTP (SQLite): a job that changes nothing in the live record,
answers zero changes under the same rules, and lists the buyers a 15-day protection
would have released earlier; bad overrides are 422 with the field named."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl

from tests.http.conftest import Api
from tests.http.test_aftercare_api import agent, follow_up, report, staff, visit

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def scenario(api: Api) -> dict[str, str]:
    """Three buyers over six weeks: one followed up on day 20 (inside 30 days' protection,
    outside 15), one walk-in left alone, one a second channel tried to report."""
    cons, cons_h = staff(api)
    agent_id, agent_h = agent(api, "lianjia")
    other_id, other_h = agent(api, "beike")
    report(api, "lianjia", agent_id, agent_h, "13800000001")
    api.clock.advance(hours=2)
    first = visit(api, cons, cons_h, phone="13800000001")
    api.clock.advance(days=1)
    second = visit(api, cons, cons_h, phone="13800000002")
    api.clock.advance(days=1)
    report(api, "beike", other_id, other_h, "13800000002")  # protected: rejected
    api.clock.advance(days=18)
    assert follow_up(api, first, cons_h).status_code == 201
    api.clock.advance(days=20)
    settle(api)
    return {"first": first, "second": second, "consultant": cons}


def settle(api: Api) -> None:
    """Let the live deadline processor fire all that is due, and the views catch up, so
    the record holds still while the what-if runs."""
    container = api.container
    for _ in range(20):
        container.follower.wait_for(container.position(), 30)
        if container.deadlines_step() == 0:
            break
    container.follower.wait_for(container.position(), 30)


def run(
    api: Api, headers: dict[str, str], overrides: dict[str, Any], ahead: timedelta = timedelta()
) -> dict[str, Any]:
    start = api.clock() - timedelta(days=60)
    body = {
        "from": start.isoformat(),
        "to": (api.clock() + ahead).isoformat(),
        "policy": {"overrides": overrides},
    }
    accepted = api.client.post(f"/v1/projects/{api.project}/what-if", json=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["Location"]
    assert location == f"/v1/jobs/{accepted.json()['job_id']}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = api.client.get(location, headers=headers).json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "done", job
    assert job["progress"]["done"] == job["progress"]["total"] == job["result"]["buyers"]
    result: dict[str, Any] = job["result"]
    result["location"] = location
    return result


def store_marks(api: Api) -> tuple[int, dict[str, int]]:
    container = api.container
    views = container.views
    tables = [
        str(r[0])
        for r in views.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        if str(r[0]) != "jobs"
    ]
    counts = {t: int(views.query(f'SELECT COUNT(*) FROM "{t}"')[0][0]) for t in tables}
    return container.store.recorder.max_notification_id() or 0, counts


def test_what_if_replays_without_touching_the_record(api: Api) -> None:
    buyers = scenario(api)
    _, auditor = api.principal("auditor", project_ids=[api.project])
    settle(api)
    before = store_marks(api)

    same = run(api, auditor, {})
    assert same["buyers"] == 2 and same["events_replayed"] > 10
    assert same["changes"] == [] and same["buyers_changed"] == 0

    shorter = run(api, auditor, {"protection": "P15D"})
    assert shorter["released_earlier"] == sorted([buyers["first"], buyers["second"]])
    refused = [c for c in shorter["changes"] if c["kind"] == "refused"]
    # Day 20's follow-up came after the buyer would already have gone to the pool.
    assert [(c["client_id"], c["subject"]) for c in refused] == [
        (buyers["first"], "FollowUpLogged")
    ]
    owners = {c["client_id"]: c for c in shorter["changes"] if c["kind"] == "owner"}
    assert owners[buyers["first"]]["live"] == buyers["consultant"]
    assert owners[buyers["first"]]["alternative"] is None

    assert store_marks(api) == before  # nothing written to the log or the views

    sheet = api.client.get(shorter["location"], headers={**auditor, "Accept": XLSX})
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith(XLSX)
    book = openpyxl.load_workbook(io.BytesIO(sheet.content))
    assert book.active is not None
    rows = list(book.active.values)
    assert rows[0][:6] == ("client_id", "kind", "subject", "live", "alternative", "detail")
    assert len(rows) - 1 == len(shorter["changes"])


def test_a_window_into_the_future_moves_no_deadline_still_ahead(api: Api) -> None:
    """A buyer owned for 10 days under a 30-day protection: asking up to 60 days from now
    under 15 days must not release them "earlier" at a time that has not come."""
    _, manager = api.principal("manager", project_ids=[api.project])
    consultant_id, consultant = api.principal("consultant", project_ids=[api.project])
    visit = {
        "project_id": api.project,
        "phone": "13912340077",
        "client_name": "钱七",
        "consultant_id": consultant_id,
    }
    assert api.client.post("/v1/visits", json=visit, headers=consultant).status_code == 201
    api.clock.advance(days=10)
    settle(api)
    result = run(api, manager, {"protection": "P15D"}, ahead=timedelta(days=60))
    assert result["released_earlier"] == [] and result["buyers_changed"] == 0
    assert datetime.fromisoformat(result["to"]) == api.clock()  # replayed up to now


def test_bad_overrides_are_422_with_the_field(api: Api) -> None:
    _, manager = api.principal("manager", project_ids=[api.project])
    url = f"/v1/projects/{api.project}/what-if"
    window = {"from": "2026-01-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
    for overrides, field in (
        ({"protection": "P1M"}, "policy.overrides.protection"),
        ({"protection": 15}, "policy.overrides.protection"),
        ({"protection": "P100D"}, "policy.overrides.protection_max"),
        ({"no_such_rule": True}, "policy.overrides.no_such_rule"),
        ({"judge_rule": "coin_toss"}, "policy.overrides.judge_rule"),
    ):
        bad = api.client.post(
            url, json={**window, "policy": {"overrides": overrides}}, headers=manager
        )
        assert bad.status_code == 422, (overrides, bad.text)
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert bad.json()["errors"][0]["field"] == field, bad.json()
    backwards = api.client.post(
        url, json={"from": window["to"], "to": window["from"]}, headers=manager
    )
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "to"


def test_who_may_ask(api: Api) -> None:
    _, consultant = api.principal("consultant", project_ids=[api.project])
    _, outsider = api.principal("manager", project_ids=["elsewhere"])
    _, manager = api.principal("manager", project_ids=[api.project])
    url = f"/v1/projects/{api.project}/what-if"
    body = {"from": "2026-01-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
    assert api.client.post(url, json=body, headers=consultant).status_code == 403
    assert api.client.post(url, json=body, headers=outsider).status_code == 403
    accepted = api.client.post(url, json=body, headers=manager)
    assert accepted.status_code == 202
    job = accepted.headers["Location"]
    # Another project's job answers exactly like a missing one (ADR 0043).
    foreign = api.client.get(job, headers=outsider)
    missing = api.client.get("/v1/jobs/nope", headers=outsider)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["detail"] == missing.json()["detail"]
    api.container.job_runner.wait()


def test_the_cli_lists_the_same_changes(api: Api, tmp_path: Path) -> None:
    buyers = scenario(api)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YINGKE_")}
    env.update(
        {
            "YINGKE_DATA_DIR": str(api.container.settings.data_dir),
            "YINGKE_ADMIN_KEY": "test-admin-key-0123456789",
            "YINGKE_SECRET": "test-secret-0123456789abcdef",
        }
    )
    start = (api.clock() - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (api.clock() + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    out = tmp_path / "result.json"
    sheet = tmp_path / "changes.xlsx"
    yingke = str(Path(sys.executable).with_name("yingke"))
    common = ["what-if", "--project", api.project, "--from", start, "--to", end]
    done = subprocess.run(
        [yingke, *common, "--set", "protection=P15D", "--output", str(out), "--xlsx", str(sheet)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2 released earlier" in done.stdout
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["released_earlier"] == sorted([buyers["first"], buyers["second"]])
    book = openpyxl.load_workbook(sheet)
    assert book.active is not None
    assert len(list(book.active.values)) - 1 == len(result["changes"])
    bad = subprocess.run(
        [yingke, *common, "--set", "protection=P1M"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "policy.overrides.protection" in bad.stderr
