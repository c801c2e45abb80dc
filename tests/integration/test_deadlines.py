"""The deadline processor on SQLite and PostgreSQL, driven by a fake clock.

Each test writes facts, moves the clock, lets the views follow and runs the processor;
the client's own history is the judge of what fired, and how many times.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from api import bodies
from domain.values import Actor
from projections.runtime import Loop
from tests.conftest import ContainerFactory
from tests.support import FakeClock, ctx, file_report, register_consultant, register_visit, shown
from yingke.bootstrap import Container, build
from yingke.settings import Settings

POLICY: dict[str, Any] = {
    "report_validity": "P1D",
    "protection": "P5D",
    "protection_extension": "P2D",
    "protection_max": "P8D",
    "inactivity_release": "P20D",  # out of the way unless a test wants it
}
MANAGER = Actor("mgr-deadlines", "manager")


def event_types(app: Container, client_id: uuid.UUID | str) -> Counter[str]:
    return Counter(e["type"] for e in app.clients.history(uuid.UUID(str(client_id))))


def events_of(app: Container, client_id: uuid.UUID | str, kind: str) -> list[dict[str, Any]]:
    return [e for e in app.clients.history(uuid.UUID(str(client_id))) if e["type"] == kind]


def visited_client(app: Container, project: str, consultant: str, phone: str) -> uuid.UUID:
    return uuid.UUID(register_visit(app, project, phone, consultant)["client_id"])


def reported_client(app: Container, project: str, phone: str) -> tuple[uuid.UUID, str]:
    body = file_report(app, project, "partner-a", phone)
    assert body["status"] == "accepted"
    return uuid.UUID(body["client_id"]), body["report_id"]


def setup(container: Container, project: str, **policy: Any) -> str:
    container.policies.set_policy(ctx(), project, {**POLICY, **policy})
    return register_consultant(container, project)


def tick(container: Container) -> int:
    """One turn of the worker loops: views follow the log, then deadlines fire."""
    container.follower.catch_up()
    return container.deadlines.run_once()


# --------------------------------------------------------------------- reports


def test_a_report_expires_when_validity_runs_out_and_only_once(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given an accepted report valid for one day, never visited
    yingke = container(clock=clock)
    setup(yingke, project_id)
    client_id, report_id = reported_client(yingke, project_id, "13700000001")

    # When the processor runs a second before the end, then at the end, then again
    clock.advance(days=1, seconds=-1)
    tick(yingke)
    assert event_types(yingke, client_id)["ReportExpired"] == 0
    clock.advance(seconds=1)
    tick(yingke)
    tick(yingke)

    # Then the report expired exactly once, at its validity end
    expired = events_of(yingke, client_id, "ReportExpired")
    assert len(expired) == 1
    assert expired[0]["data"]["report_id"] == report_id
    assert expired[0]["actor"] == {"id": "system", "role": "system"}
    assert shown(bodies.report, yingke.reports.report(report_id))["status"] == "expired"


def test_a_report_confirmed_by_a_visit_never_expires(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    yingke = container(clock=clock)
    consultant = setup(yingke, project_id)
    client_id, report_id = reported_client(yingke, project_id, "13700000002")
    clock.advance(hours=2)
    register_visit(yingke, project_id, "13700000002", consultant, "partner-a")

    clock.advance(days=2)
    tick(yingke)

    assert event_types(yingke, client_id)["ReportExpired"] == 0
    assert shown(bodies.report, yingke.reports.report(report_id))["status"] == "confirmed"


def test_a_masked_report_expires_in_its_pattern_pool(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given a masked report (前三后四) that no visit ever matched
    yingke = container(clock=clock)
    setup(yingke, project_id)
    body = file_report(yingke, project_id, "partner-m", "137****0009")
    assert body["status"] == "accepted" and body["client_id"] is None

    # When its validity runs out
    clock.advance(days=1)
    tick(yingke)
    tick(yingke)

    # Then it is expired, in the stream that holds it
    assert shown(bodies.report, yingke.reports.report(body["report_id"]))["status"] == "expired"


# ------------------------------------------------------------------ protection


def test_protection_expiry_releases_to_the_pool_once_however_often_it_runs(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given a buyer owned since now with five days of protection
    yingke = container(clock=clock)
    consultant = setup(yingke, project_id)
    client_id = visited_client(yingke, project_id, consultant, "13700000003")
    tick(yingke)

    # When the processor runs just before and then twice after the end
    clock.advance(days=5, seconds=-1)
    tick(yingke)
    assert event_types(yingke, client_id)["ProtectionExpired"] == 0
    clock.advance(seconds=1)
    tick(yingke)
    tick(yingke)

    # Then protection expired once and the buyer went to the pool once
    types = event_types(yingke, client_id)
    assert (types["ProtectionExpired"], types["ReleasedToPool"]) == (1, 1)
    released = events_of(yingke, client_id, "ReleasedToPool")[0]
    assert released["data"]["reason"] == "expired"
    assert released["data"]["previous_consultant_id"] == consultant
    as_of = yingke.clients.ownership_as_of(client_id, clock.now)
    assert as_of["owner"]["status"] == "pool"


def test_inactivity_releases_the_buyer_with_reason_inactive(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    yingke = container(clock=clock)
    consultant = setup(yingke, project_id, inactivity_release="P3D")
    client_id = visited_client(yingke, project_id, consultant, "13700000004")
    clock.advance(days=1)
    yingke.followups.log_follow_up(
        ctx(Actor(consultant, "consultant")),
        client_id,
        method="call",
        summary="?",
        effective=False,
    )  # not reaching the buyer does not count as activity
    tick(yingke)

    clock.advance(days=2)
    tick(yingke)
    tick(yingke)

    types = event_types(yingke, client_id)
    assert types["ReleasedToPool"] == 1 and types["ProtectionExpired"] == 0
    assert events_of(yingke, client_id, "ReleasedToPool")[0]["data"]["reason"] == "inactive"


def test_on_expiry_manager_hands_the_buyer_to_the_manager(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    yingke = container(clock=clock)
    manager = register_consultant(yingke, project_id, role="manager")
    consultant = setup(yingke, project_id, on_expiry="manager", expiry_manager_id=manager)
    client_id = visited_client(yingke, project_id, consultant, "13700000005")

    clock.advance(days=5)
    tick(yingke)
    tick(yingke)

    moved = events_of(yingke, client_id, "OwnershipTransferred")
    assert len(moved) == 1
    assert (moved[0]["data"]["consultant_id"], moved[0]["data"]["basis"]) == (manager, "expiry")
    assert event_types(yingke, client_id)["ReleasedToPool"] == 0


def test_a_deadline_moved_by_a_newer_event_is_not_acted_on_even_when_the_view_is_stale(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given a buyer whose protection ends on day 5, as the views know
    yingke = container(clock=clock)
    consultant = setup(yingke, project_id)
    client_id = visited_client(yingke, project_id, consultant, "13700000006")
    yingke.follower.catch_up()

    # When an effective follow-up on day 4 moves the end to day 6, and the processor runs
    # on day 5 before the views have seen that follow-up
    clock.advance(days=4)
    yingke.followups.log_follow_up(
        ctx(Actor(consultant, "consultant")),
        client_id,
        method="wechat",
        summary="ok",
        effective=True,
    )
    clock.advance(days=1, minutes=1)
    yingke.deadlines.run_once()

    # Then nothing expires: the stream, not the view, decides
    types = event_types(yingke, client_id)
    assert types["ProtectionExtended"] == 1 and types["ProtectionExpired"] == 0
    tick(yingke)
    assert event_types(yingke, client_id)["ProtectionExpired"] == 0

    # And on day 6 it does expire
    clock.advance(days=1)
    tick(yingke)
    assert event_types(yingke, client_id)["ProtectionExpired"] == 1


def test_a_deadline_of_an_ownership_replaced_since_is_not_acted_on(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given a buyer whose protection ends on day 5, as the views know
    yingke = container(clock=clock)
    consultant = setup(yingke, project_id)
    successor = register_consultant(yingke, project_id)
    client_id = visited_client(yingke, project_id, consultant, "13700000007")
    yingke.follower.catch_up()

    # When a manager transfers the buyer on day 1 (a new ownership, due on day 6) and on
    # day 6 the processor runs on the stale view, which still names the old ownership
    clock.advance(days=1)
    yingke.followups.transfer(ctx(MANAGER), client_id, successor, "rebalancing")
    clock.advance(days=5)
    yingke.deadlines.run_once()

    # Then that stale deadline is not acted on, although the new one is due too
    types = event_types(yingke, client_id)
    assert types["ProtectionExpired"] == 0 and types["ReleasedToPool"] == 0
    owner = yingke.clients.ownership_as_of(client_id, clock.now)["owner"]
    assert owner["consultant_id"] == successor

    # And once the views know the new ownership, its own deadline fires
    tick(yingke)
    expired = events_of(yingke, client_id, "ProtectionExpired")
    assert len(expired) == 1
    released = events_of(yingke, client_id, "ReleasedToPool")[0]
    assert released["data"]["previous_consultant_id"] == successor


# ------------------------------------------------------- concurrency and restart


def test_an_interrupted_departure_is_finished_by_the_processor(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given a departure that revoked the key and then stopped before moving anyone
    yingke = container(clock=clock)
    leaver = setup(yingke, project_id)
    successor = register_consultant(yingke, project_id)
    clients = [visited_client(yingke, project_id, leaver, f"1370000040{i}") for i in range(3)]
    yingke.departures.start_departure(ctx(MANAGER), leaver, successor)

    # When the processor runs (twice), with the views following as in `yingke serve`
    yingke.follower.catch_up()
    views = Loop("views", yingke.follower.run_once, 0.01)
    views.start()
    try:
        yingke.deadlines.run_once()
        yingke.deadlines.run_once()
    finally:
        views.stop()

    # Then every buyer moved once and the departure is complete
    for client_id in clients:
        moves = events_of(yingke, client_id, "OwnershipTransferred")
        assert [m["data"]["consultant_id"] for m in moves] == [successor]
    status = shown(bodies.departure, yingke.departures.departure(leaver))
    assert (status["status"], status["moved"]) == ("completed", 3)


def test_two_processors_at_once_act_once(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given five owned buyers and three unvisited reports, all due
    first = container(clock=clock)
    second = container(clock=clock)  # another process on the same store
    consultant = setup(first, project_id)
    owned = [visited_client(first, project_id, consultant, f"1370000010{i}") for i in range(5)]
    reported = [reported_client(first, project_id, f"1370000020{i}")[0] for i in range(3)]
    clock.advance(days=6)
    first.follower.catch_up()
    second.follower.catch_up()

    # When both processors run at the same instant, twice each
    barrier = threading.Barrier(4)

    def run(processor: Container) -> int:
        barrier.wait(timeout=30)
        return processor.deadlines.run_once()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run, [first, second, first, second]))

    # Then each deadline fired exactly once
    for client_id in owned:
        types = event_types(first, client_id)
        assert (types["ProtectionExpired"], types["ReleasedToPool"]) == (1, 1), client_id
    for client_id in reported:
        assert event_types(first, client_id)["ReportExpired"] == 1


def test_a_restarted_processor_fires_what_came_due_while_it_was_down(
    settings: Settings, clock: FakeClock, project_id: str
) -> None:
    # Given a running service that recorded a visit and a report, then stopped before
    # its views saw the report
    running = build(settings, clock=clock)
    try:
        consultant = setup(running, project_id)
        owned = visited_client(running, project_id, consultant, "13700000301")
        running.follower.catch_up()
        reported, _ = reported_client(running, project_id, "13700000302")
    finally:
        running.close()

    # When time passes while it is down and a fresh one starts on the same data
    clock.advance(days=6)
    restarted = build(settings, clock=clock)
    try:
        tick(restarted)
        tick(restarted)

        # Then everything that came due fired, once
        assert event_types(restarted, owned)["ProtectionExpired"] == 1
        assert event_types(restarted, owned)["ReleasedToPool"] == 1
        assert event_types(restarted, reported)["ReportExpired"] == 1
    finally:
        restarted.close()
