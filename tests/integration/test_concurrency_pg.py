"""Simultaneous requests for one buyer give one answer: 16 writers released at once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from eventsourcing.persistence import IntegrityError

from api import bodies as api_bodies
from api.bodies import answer
from domain.services.uow import Context, Idempotency
from domain.values import Actor
from tests.support import file_report, register_consultant, register_visit, shown
from yingke.bootstrap import Container, build
from yingke.settings import Settings

WRITERS = 16
PHONE = "13812345678"
T = TypeVar("T")


class ConflictCounter:
    """Counts optimistic-concurrency conflicts, to show the writers really collided."""

    def __init__(self, app: Container) -> None:
        self.count = 0
        self._lock = threading.Lock()
        save = app.store.save

        def counting_save(*aggregates: Any, **kwargs: Any) -> Any:
            try:
                return save(*aggregates, **kwargs)
            except IntegrityError:
                with self._lock:
                    self.count += 1
                raise

        setattr(app.store, "save", counting_save)  # noqa: B010 - mypy refuses assigning a method


def all_at_once(task: Callable[[int], T], writers: int = WRITERS) -> list[T]:
    """Run ``task(i)`` in ``writers`` threads released by one barrier."""
    barrier = threading.Barrier(writers)

    def run(i: int) -> T:
        barrier.wait(timeout=30)
        return task(i)

    with ThreadPoolExecutor(max_workers=writers) as pool:
        return list(pool.map(run, range(writers)))


@pytest.fixture
def pg_app(pg_settings: Settings) -> Iterator[Container]:
    """The application on PostgreSQL with the system clock, as in production."""
    container = build(pg_settings)
    yield container
    container.close()


@pytest.fixture
def sqlite_app(sqlite_settings: Settings) -> Iterator[Container]:
    container = build(sqlite_settings)
    yield container
    container.close()


def history_types(app: Container, client_id: str) -> Counter[str]:
    return Counter(e["type"] for e in app.clients.history(uuid.UUID(client_id)))


def check_one_channel_wins(app: Container, project_id: str) -> None:
    conflicts = ConflictCounter(app)

    bodies = all_at_once(lambda i: file_report(app, project_id, f"partner-{i}", PHONE))

    assert conflicts.count >= 1, "the writers never collided: the test proves nothing"

    accepted = [b for b in bodies if b["status"] == "accepted"]
    rejected = [b for b in bodies if b["status"] == "rejected"]
    assert len(accepted) == 1
    assert len(rejected) == WRITERS - 1
    assert {b["reason"] for b in rejected} == {"protected"}
    assert len({b["client_id"] for b in bodies}) == 1
    assert len({b["report_id"] for b in bodies}) == WRITERS
    types = history_types(app, bodies[0]["client_id"])
    assert types["ClientRegistered"] == 1
    assert types["ReportFiled"] == WRITERS
    assert types["ReportAccepted"] == 1
    assert types["ReportRejected"] == WRITERS - 1
    for body in bodies:
        assert (
            shown(api_bodies.report, app.reports.report(body["report_id"]))["status"]
            == body["status"]
        )


@pytest.mark.postgres
def test_sixteen_channels_reporting_one_number_at_once_give_one_accepted_report(
    pg_app: Container, project_id: str
) -> None:
    check_one_channel_wins(pg_app, project_id)


def test_sixteen_channels_reporting_at_once_on_sqlite_give_one_accepted_report(
    sqlite_app: Container, project_id: str
) -> None:
    check_one_channel_wins(sqlite_app, project_id)


@pytest.mark.postgres
def test_sixteen_simultaneous_visits_award_ownership_exactly_once(
    pg_app: Container, project_id: str
) -> None:
    consultants = [register_consultant(pg_app, project_id) for _ in range(4)]
    report = file_report(pg_app, project_id, "A", PHONE)
    conflicts = ConflictCounter(pg_app)

    bodies = all_at_once(
        lambda i: register_visit(pg_app, project_id, PHONE, consultants[i % 4], partner_id="A")
    )

    assert conflicts.count >= 1
    assert Counter(b["outcome"] for b in bodies) == {"report": 1, "protected": WRITERS - 1}
    owners = {(b["owner"]["consultant_id"], b["owner"]["report_id"]) for b in bodies}
    assert len(owners) == 1
    assert owners.pop()[1] == report["report_id"]
    types = history_types(pg_app, report["client_id"])
    assert types["ClientVisited"] == WRITERS
    assert types["OwnershipAwarded"] == 1
    assert types["ReportConfirmed"] == 1


@pytest.mark.postgres
def test_the_same_channel_sixteen_times_at_once_is_accepted_once(
    pg_app: Container, project_id: str
) -> None:
    conflicts = ConflictCounter(pg_app)

    bodies = all_at_once(lambda i: file_report(pg_app, project_id, "A", PHONE))

    assert conflicts.count >= 1

    assert Counter((b["status"], b["reason"]) for b in bodies) == {
        ("accepted", None): 1,
        ("rejected", "duplicate"): WRITERS - 1,
    }
    types = history_types(pg_app, bodies[0]["client_id"])
    assert (types["ReportFiled"], types["ReportAccepted"]) == (WRITERS, 1)


@pytest.mark.postgres
def test_sixteen_requests_with_one_idempotency_key_record_one_report(
    pg_app: Container, project_id: str
) -> None:
    agent = Actor(f"agent-{uuid.uuid4().hex[:8]}", "channel_agent")
    key = Idempotency(f"idem-{uuid.uuid4().hex}", "same-body")

    def send(i: int) -> tuple[dict[str, Any], bool]:
        context = Context(agent, f"req-{i}", key, answer(201, api_bodies.filed_report))
        result = pg_app.reports.file_report(
            context,
            project_id=project_id,
            partner_id="A",
            agent_id="agent-A",
            client_name="张三丰",
            phone=PHONE,
        )
        assert result.response is not None
        return result.response.body, result.replayed

    conflicts = ConflictCounter(pg_app)

    answers = all_at_once(send)

    assert conflicts.count >= 1

    bodies = [body for body, _ in answers]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["status"] == "accepted"
    assert [replayed for _, replayed in answers].count(False) == 1
    types = history_types(pg_app, bodies[0]["client_id"])
    assert (types["ReportFiled"], types["ReportAccepted"]) == (1, 1)


@pytest.mark.postgres
def test_simultaneous_reports_for_different_buyers_are_all_accepted(
    pg_app: Container, project_id: str
) -> None:
    bodies = all_at_once(lambda i: file_report(pg_app, project_id, "A", f"139{i:08d}"))

    assert [b["status"] for b in bodies] == ["accepted"] * WRITERS
    assert len({b["client_id"] for b in bodies}) == WRITERS
