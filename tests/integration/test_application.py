"""One application test case, run on the embedded SQLite store and on PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import timedelta

import psycopg
import pytest

from api import bodies
from api.bodies import answer, jsonable
from domain.errors import IdempotencyKeyReused, InvalidInput, NotFound
from domain.services.uow import Context, Idempotency
from domain.values import Actor, parse_duration
from tests.support import (
    FakeClock,
    body_of,
    ctx,
    file_report,
    register_consultant,
    register_visit,
    shown,
    unique,
)
from yingke.bootstrap import Container
from yingke.settings import Settings

PHONE = "+86 138-1234-5678"
MANAGER = Actor("manager-1", "manager")


def test_a_first_report_is_accepted_for_the_validity_of_the_policy(
    app: Container, clock: FakeClock, project_id: str
) -> None:
    body = file_report(app, project_id, "A", PHONE)

    assert body["status"] == "accepted"
    assert body["reason"] is None
    assert body["client_id"] == str(app.clients.lookup_client(project_id, PHONE))
    assert body["phone_masked"] == "138****5678"
    assert body["filed_at"] == clock.now.isoformat()
    assert body["valid_until"] == (clock.now + timedelta(days=3)).isoformat()
    assert body["policy_version"] == 0
    assert shown(bodies.report, app.reports.report(body["report_id"]))["status"] == "accepted"


def test_a_second_channel_is_rejected_and_the_visit_awards_the_first(
    app: Container, clock: FakeClock, project_id: str, consultant: str
) -> None:
    first = file_report(app, project_id, "A", PHONE)
    clock.advance(minutes=5)
    second = file_report(app, project_id, "B", "13812345678")
    clock.advance(hours=1)

    visit = register_visit(app, project_id, "138 1234 5678", consultant, partner_id="B")

    assert (second["status"], second["reason"], second["valid_until"]) == (
        "rejected",
        "protected",
        None,
    )
    assert visit["client_id"] == first["client_id"]
    assert visit["outcome"] == "report"
    owner = visit["owner"]
    assert owner["status"] == "owned"
    assert (owner["consultant_id"], owner["partner_id"]) == (consultant, "A")
    assert (owner["report_id"], owner["basis"]) == (first["report_id"], "report")
    assert owner["since"] == clock.now.isoformat()
    assert owner["protected_until"] == (clock.now + timedelta(days=30)).isoformat()
    assert shown(bodies.report, app.reports.report(first["report_id"]))["status"] == "confirmed"


def test_the_history_is_the_evidence_chain_with_actor_and_correlation_id(
    app: Container, clock: FakeClock, project_id: str, consultant: str
) -> None:
    agent = Actor("agent-A", "channel_agent")
    report = file_report(app, project_id, "A", PHONE, context=ctx(agent, "req-report"))
    clock.advance(hours=2)
    register_visit(
        app,
        project_id,
        PHONE,
        consultant,
        context=ctx(Actor(consultant, "consultant"), "req-visit"),
    )

    history = app.clients.history(uuid.UUID(report["client_id"]))

    # The evidence of issue 2 comes first; later features may append bookkeeping events.
    assert [e["type"] for e in history][:6] == [
        "ClientRegistered",
        "ReportFiled",
        "ReportAccepted",
        "ClientVisited",
        "ReportConfirmed",
        "OwnershipAwarded",
    ]
    assert [e["version"] for e in history] == list(range(1, len(history) + 1))
    assert [e["correlation_id"] for e in history] == ["req-report"] * 3 + ["req-visit"] * (
        len(history) - 3
    )
    assert history[1]["actor"] == {"id": "agent-A", "role": "channel_agent"}
    assert history[5]["actor"] == {"id": consultant, "role": "consultant"}
    assert history[1]["data"]["client_name_masked"] == "张**"
    assert history[5]["data"]["basis"] == "report"
    assert history[5]["data"]["report_id"] == report["report_id"]
    assert history[5]["occurred_at"] == clock.now.isoformat()
    assert "13812345678" not in json.dumps(history)
    assert "张三丰" not in json.dumps(history, ensure_ascii=False)


def test_ownership_as_of_an_earlier_instant_is_computed_by_replay(
    app: Container, clock: FakeClock, project_id: str, consultant: str
) -> None:
    before = clock.now - timedelta(minutes=1)
    reported_at = clock.now
    report = file_report(app, project_id, "A", PHONE)
    clock.advance(hours=1)
    visited_at = clock.now
    register_visit(app, project_id, PHONE, consultant)
    client_id = uuid.UUID(report["client_id"])

    nothing = app.clients.ownership_as_of(client_id, before)
    reported = app.clients.ownership_as_of(client_id, reported_at + timedelta(minutes=30))
    owned = app.clients.ownership_as_of(client_id, visited_at)

    assert nothing["owner"]["status"] == "none"
    assert nothing["decided_by"] is None
    assert reported["owner"]["status"] == "reported"
    assert reported["owner"]["partner_id"] == "A"
    assert reported["decided_by"]["type"] == "ReportAccepted"
    assert reported["replayed_to_version"] == 3
    assert owned["owner"]["status"] == "owned"
    assert owned["owner"]["consultant_id"] == consultant
    assert owned["decided_by"]["type"] == "OwnershipAwarded"
    assert owned["policy_version"] == 0
    with pytest.raises(NotFound):
        app.clients.ownership_as_of(uuid.uuid4(), visited_at)


def test_an_unvisited_report_stops_counting_once_its_validity_has_passed(
    app: Container, clock: FakeClock, project_id: str
) -> None:
    report = file_report(app, project_id, "A", PHONE)
    client_id = uuid.UUID(report["client_id"])
    clock.advance(days=3)

    late = file_report(app, project_id, "B", PHONE)

    assert shown(bodies.report, app.reports.report(report["report_id"]))["status"] == "expired"
    assert late["status"] == "accepted"
    just_before = app.clients.ownership_as_of(client_id, clock.now - timedelta(seconds=1))
    assert just_before["owner"]["partner_id"] == "A"
    assert app.clients.ownership_as_of(client_id, clock.now)["owner"]["partner_id"] == "B"


def test_policy_versions_are_kept_and_decisions_name_the_one_they_applied(
    app: Container, clock: FakeClock, project_id: str
) -> None:
    assert shown(bodies.settings, app.policies.policy_version(project_id, None))["version"] == 0

    first = app.policies.set_policy(ctx(MANAGER), project_id, {"judge_rule": "visit_first"})
    clock.advance(hours=1)
    second = app.policies.set_policy(ctx(MANAGER), project_id, {"report_validity": "PT24H"})
    report = file_report(app, project_id, "A", PHONE)

    assert (body_of(first)["version"], body_of(second)["version"]) == (1, 2)
    v1 = shown(bodies.settings, app.policies.policy_version(project_id, 1))
    assert (v1["judge_rule"], v1["report_validity"]) == ("visit_first", "P3D")
    current = shown(bodies.settings, app.policies.policy_version(project_id, None))
    assert current["version"] == 2
    assert parse_duration(current["report_validity"], "x") == timedelta(days=1)
    assert jsonable(current["effective_from"]) == clock.now.isoformat()
    defaults = shown(bodies.settings, app.policies.policy_version(project_id, 0))
    assert (defaults["version"], defaults["judge_rule"], defaults["protection"]) == (
        0,
        "report_first",
        "P30D",
    )
    assert report["policy_version"] == 2
    assert report["valid_until"] == (clock.now + timedelta(days=1)).isoformat()
    with pytest.raises(NotFound):
        shown(bodies.settings, app.policies.policy_version(project_id, 3))
    with pytest.raises(NotFound):
        shown(bodies.settings, app.policies.policy_version(unique("proj"), 1))
    with pytest.raises(InvalidInput):
        app.policies.set_policy(ctx(MANAGER), project_id, {"protection": "P1M"})
    assert shown(bodies.settings, app.policies.policy_version(project_id, None))["version"] == 2


def test_a_client_is_found_by_any_format_of_its_number(app: Container, project_id: str) -> None:
    report = file_report(app, project_id, "A", "+86 138-1234-5678")

    found = {
        str(app.clients.lookup_client(project_id, phone))
        for phone in ("8613812345678", "138 1234 5678", "13812345678")
    }

    assert found == {report["client_id"]}
    with pytest.raises(NotFound):
        app.clients.lookup_client(project_id, "13900000000")
    with pytest.raises(NotFound):
        app.clients.lookup_client(unique("proj"), "13812345678")
    with pytest.raises(InvalidInput) as caught:
        app.clients.lookup_client(project_id, "12345")
    assert caught.value.field == "phone"


def test_a_repeated_idempotent_request_returns_the_first_answer_and_records_nothing(
    app: Container, clock: FakeClock, project_id: str
) -> None:
    agent = Actor(unique("agent"), "channel_agent")
    key = unique("idem")

    def send(fingerprint: str) -> tuple[dict[str, object], bool]:
        respond = answer(201, bodies.filed_report)
        context = Context(agent, unique("req"), Idempotency(key, fingerprint), respond)
        result = app.reports.file_report(
            context,
            project_id=project_id,
            partner_id="A",
            agent_id="agent-A",
            client_name="张三丰",
            phone=PHONE,
        )
        assert result.response is not None
        return result.response.body, result.replayed

    first, first_replayed = send("fingerprint-1")
    position = app.position()
    clock.advance(minutes=1)
    again, again_replayed = send("fingerprint-1")

    assert (first_replayed, again_replayed) == (False, True)
    assert again == first
    assert app.position() == position
    history = app.clients.history(uuid.UUID(str(first["client_id"])))
    assert [e["type"] for e in history].count("ReportFiled") == 1
    with pytest.raises(IdempotencyKeyReused):
        send("fingerprint-2")
    assert app.position() == position


def test_erasing_personal_data_leaves_a_readable_stream_without_the_person(
    app: Container, clock: FakeClock, project_id: str, consultant: str
) -> None:
    report = file_report(app, project_id, "A", PHONE, name="张三丰")
    register_visit(app, project_id, PHONE, consultant, name="张三丰")
    client_id = uuid.UUID(report["client_id"])
    assert app.clients.history(client_id)[1]["data"]["client_name_masked"] == "张**"
    assert (
        shown(bodies.client_summary, app.clients.client_summary(client_id))["client_name_masked"]
        == "张**"
    )

    clock.advance(minutes=1)
    result = app.clients.erase_personal_data(ctx(Actor("admin", "admin")), client_id)

    assert shown(bodies.erased, result.value)["personal_data_erased"] is True
    history = app.clients.history(client_id)
    assert [e["type"] for e in history][-1] == "PersonalDataErased"
    sealed = [
        e for e in history if e["type"] in ("ClientRegistered", "ReportFiled", "ClientVisited")
    ]
    assert len(sealed) == 3
    for event in sealed:
        assert event["data"]["personal_data"] == "erased"
        assert "client_name_masked" not in event["data"]
    summary = shown(bodies.client_summary, app.clients.client_summary(client_id))
    assert summary["personal_data_erased"] is True
    assert summary["client_name_masked"] is None
    assert summary["owner"]["partner_id"] == "A"
    assert (
        shown(bodies.report, app.reports.report(report["report_id"]))["client_name_masked"] is None
    )
    assert app.clients.ownership_as_of(client_id, clock.now)["owner"]["status"] == "owned"


def test_a_masked_report_wins_the_visit_of_a_matching_buyer(
    app: Container, clock: FakeClock, project_id: str, consultant: str
) -> None:
    masked = file_report(app, project_id, "A", "138****5678")
    clock.advance(minutes=10)
    full = file_report(app, project_id, "B", PHONE)
    clock.advance(hours=1)

    visit = register_visit(app, project_id, PHONE, consultant)

    assert (masked["status"], masked["client_id"]) == ("accepted", None)
    assert full["status"] == "accepted"
    assert visit["owner"]["partner_id"] == "A"
    assert visit["owner"]["report_id"] == masked["report_id"]
    matched = shown(bodies.report, app.reports.report(masked["report_id"]))
    assert (matched["status"], matched["client_id"]) == ("confirmed", visit["client_id"])
    closed = shown(bodies.report, app.reports.report(full["report_id"]))
    assert (closed["status"], closed["reason"]) == ("closed", "lost_to_earlier_report")
    types = [e["type"] for e in app.clients.history(uuid.UUID(visit["client_id"]))]
    assert "MaskedReportMatched" in types


def test_a_visit_needs_an_active_consultant_of_the_project(app: Container, project_id: str) -> None:
    elsewhere = register_consultant(app, unique("proj"))

    for consultant_id in (elsewhere, unique("nobody")):
        with pytest.raises(InvalidInput) as caught:
            register_visit(app, project_id, PHONE, consultant_id)
        assert caught.value.field == "consultant_id"


def _stored_event_bytes(settings: Settings) -> list[bytes]:
    if settings.database_url is None:
        with sqlite3.connect(settings.sqlite_path) as conn:
            rows = conn.execute("SELECT originator_id, state FROM stored_events").fetchall()
        return [str(r[0]).encode() + bytes(r[1]) for r in rows]
    with psycopg.connect(settings.database_url) as pg:
        pg_rows = pg.execute("SELECT originator_id::text, state FROM yingke_events").fetchall()
    return [r[0].encode() + bytes(r[1]) for r in pg_rows]


def test_the_raw_phone_and_name_never_reach_the_event_store(
    app: Container, settings: Settings, project_id: str, consultant: str
) -> None:
    file_report(app, project_id, "A", "+86 139-8765-4321", name="欧阳娜娜")
    file_report(app, project_id, "B", "139****4321", name="欧阳娜娜")
    register_visit(app, project_id, "13987654321", consultant, name="欧阳娜娜")

    stored = _stored_event_bytes(settings)

    assert any(b"139****4321" in row for row in stored)  # the masked form is kept
    for row in stored:
        assert b"13987654321" not in row
        assert b"13812345678" not in row  # used by the other tests of the session
        assert b"87654321" not in row
        assert "欧阳娜娜".encode() not in row
        assert b"\\u6b27\\u9633" not in row  # the name escaped as JSON


def test_moving_a_departing_buyer_twice_keeps_the_first_move(
    app: Container, project_id: str, consultant: str
) -> None:
    """The request and the deadline processor may both move the same buyer; the second
    must not record the buyer as skipped and so undo the count of the first."""
    successor = register_consultant(app, project_id)
    client_id = register_visit(app, project_id, "13912340001", consultant)["client_id"]
    app.departures.start_departure(ctx(), consultant, successor)

    move = app.departures.move_departing_client
    first = move(ctx(), consultant, uuid.UUID(str(client_id))).value
    again = move(ctx(), consultant, uuid.UUID(str(client_id))).value

    assert first.outcome == again.outcome == "transferred"
    assert app.departures.departure(consultant).moved == {str(client_id): "transferred"}
