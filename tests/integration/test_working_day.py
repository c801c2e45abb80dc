"""The working day's rules (issue 13) through the deadline processor and the views, on
SQLite and PostgreSQL with a fake clock: each fires on its own, once however often the
processor runs, and the task views show what it raised until the work is done.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from domain.errors import InvalidInput
from domain.values import Actor
from projections import queries
from projections.queries import Scope
from tests.conftest import ContainerFactory
from tests.support import FakeClock, ctx, file_report, register_consultant, register_visit
from yingke.bootstrap import Container

MANAGER = Actor("mgr-day", "manager")
SUPERVISOR = Actor("sup-day", "supervisor")
POLICY: dict[str, Any] = {
    "protection": "P9D",
    "protection_max": "P20D",
    "inactivity_release": "P20D",  # out of the way
    "dormant_after": "P3D",
    "escalate_after": {"A": "PT2H", "B": "P1D"},
    "negotiation_escalation": "P4D",
    "recent_visit_window": "P2D",
}
PRICE = 300_000_000


def tick(app: Container) -> int:
    """One turn of the worker loops: views follow the log, deadlines fire, views again."""
    app.follower.catch_up()
    fired = app.deadlines.run_once()
    app.follower.catch_up()
    return fired


def types(app: Container, client_id: uuid.UUID) -> Counter[str]:
    return Counter(e["type"] for e in app.clients.history(client_id))


def tasks_of(app: Container, project_id: str, **filters: Any) -> list[dict[str, Any]]:
    scope = Scope(project_ids=(project_id,))
    return queries.tasks(app.views, scope, app.clock(), limit=100, **filters).items


def raised(app: Container, project_id: str, **filters: Any) -> list[dict[str, Any]]:
    scope = Scope(project_ids=(project_id,))
    return queries.raised_tasks(app.views, scope, limit=100, **filters).items


def office(app: Container, project_id: str) -> str:
    app.policies.set_policy(ctx(MANAGER), project_id, POLICY)
    return register_consultant(app, project_id)


def owned(app: Container, project_id: str, consultant: str, phone: str) -> uuid.UUID:
    return uuid.UUID(register_visit(app, project_id, phone, consultant)["client_id"])


def test_a_buyer_nobody_reaches_goes_dormant_once_and_wakes_at_the_next_contact(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given a buyer owned since now, under dormant_after = 3 days
    app = container(clock=clock)
    consultant = office(app, project_id)
    client_id = owned(app, project_id, consultant, "13600000001")
    tick(app)

    # When the processor runs a second before three days, then twice after
    clock.advance(days=3, seconds=-1)
    tick(app)
    assert types(app, client_id)["ClientWentDormant"] == 0
    clock.advance(seconds=1)
    tick(app)
    tick(app)

    # Then the buyer went dormant once: a wake-up task for the owner, the 待激活 flag on
    # the follow-up task, and the protection board (ending in 6 days) counts them
    assert types(app, client_id)["ClientWentDormant"] == 1
    [wake_up] = raised(app, project_id, kind="wake_up")
    assert (wake_up["client_id"], wake_up["consultant_id"]) == (str(client_id), consultant)
    assert (wake_up["assignee_role"], wake_up["status"]) == ("consultant", "open")
    assert wake_up["since"] == clock.now - timedelta(days=3)
    [task] = tasks_of(app, project_id, consultant_id=consultant)
    assert task["dormant"] is True
    assert [t["client_id"] for t in tasks_of(app, project_id, dormant=True)] == [str(client_id)]
    [board] = queries.protection(app.views, Scope(project_ids=(project_id,)), clock.now)
    assert (board["ending_within_7_days"], board["dormant"]) == (1, 1)

    # When the owner reaches the buyer
    app.followups.log_follow_up(
        ctx(Actor(consultant, "consultant")),
        client_id,
        method="call",
        summary="约了周末看房",
        effective=True,
    )
    tick(app)

    # Then the task is done and the flag is gone; the clock restarts from that contact
    assert raised(app, project_id, kind="wake_up") == []
    [done] = raised(app, project_id, kind="wake_up", status="done")
    assert done["closed_by"] == "FollowUpLogged"
    assert tasks_of(app, project_id, dormant=True) == []
    clock.advance(days=3)
    tick(app)
    assert types(app, client_id)["ClientWentDormant"] == 2


def test_overdue_follow_ups_escalate_per_grade_once(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given two buyers whose first follow-up is due in 24 h: one graded A, one ungraded
    app = container(clock=clock)
    consultant = office(app, project_id)
    hot = owned(app, project_id, consultant, "13600000002")
    plain = owned(app, project_id, consultant, "13600000003")
    app.followups.change_grade(ctx(SUPERVISOR), hot, "A", "签约意向强")
    tick(app)

    # When 26 hours pass (A waits 2 h after the due time, B and the ungraded a day)
    clock.advance(hours=26)
    tick(app)
    tick(app)

    # Then only the A buyer is escalated, to the supervisor, once
    assert (types(app, hot)["FollowUpEscalated"], types(app, plain)["FollowUpEscalated"]) == (1, 0)
    [escalated] = tasks_of(app, project_id, escalated=True)
    assert (escalated["client_id"], escalated["escalated"], escalated["status"]) == (
        str(hot),
        True,
        "overdue",
    )
    [task] = raised(app, project_id, kind="follow_up_escalated")
    assert (task["assignee_role"], task["grade"]) == ("supervisor", "A")

    # When a day more passes, the ungraded buyer escalates too (as B)
    clock.advance(hours=22)
    tick(app)
    assert types(app, plain)["FollowUpEscalated"] == 1
    assert {t["client_id"] for t in tasks_of(app, project_id, escalated=True)} == {
        str(hot),
        str(plain),
    }

    # When the owner follows the A buyer up, that escalation is done
    app.followups.log_follow_up(
        ctx(Actor(consultant, "consultant")), hot, method="visit", summary="到访", effective=True
    )
    tick(app)
    assert [t["client_id"] for t in tasks_of(app, project_id, escalated=True)] == [str(plain)]
    assert tasks_of(app, project_id, escalated=False)[0]["client_id"] == str(hot)


def test_a_negotiation_without_a_contract_goes_to_the_manager_once(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given a deal whose deposit (定金) was paid, then subscribed (认购), never signed
    app = container(clock=clock)
    consultant = office(app, project_id)
    client_id = owned(app, project_id, consultant, "13600000004")
    rows = [
        (
            "line 2",
            {
                "building": "A",
                "number": "0201",
                "rooms": 3,
                "area": "95.5",
                "floor": 2,
                "orientation": "south",
                "list_price_fen": PRICE,
            },
        )
    ]
    unit = app.units.import_units(ctx(), project_id, rows).value.units[0].unit_id
    seller = ctx(Actor(consultant, "consultant"))
    deal_id = app.deals.open_deal(seller, client_id, unit).value.deal.id
    app.deals.pay_deposit(
        seller, deal_id, amount=2_000_000, method="cash", signing_deadline=clock.now + timedelta(30)
    )
    clock.advance(days=1)
    app.deals.sign_subscription(seller, deal_id, price=PRICE, payment_plan="full")
    tick(app)

    # When four days from the deposit pass, less a second, then exactly, then again
    clock.advance(days=3, seconds=-1)
    tick(app)
    assert raised(app, project_id, kind="negotiation_escalated") == []
    clock.advance(seconds=1)
    tick(app)
    tick(app)

    # Then one escalation is on the deal and one task waits for the project's managers
    history = [type(e).__name__ for e in app.uow.events(deal_id)]
    assert history.count("NegotiationEscalated") == 1
    [task] = raised(app, project_id, kind="negotiation_escalated")
    assert (task["deal_id"], task["client_id"], task["assignee_role"]) == (
        str(deal_id),
        str(client_id),
        "manager",
    )
    assert task["consultant_id"] == consultant

    # When the contract is signed, the task is done
    app.deals.sign_contract(seller, deal_id, contract_no="HT-0001", price=PRICE)
    tick(app)
    assert raised(app, project_id, kind="negotiation_escalated") == []
    assert tick(app) == 0


def test_a_report_for_a_buyer_seen_at_the_office_inside_the_window_is_void(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given a buyer who walked in, was given up (战败) the next day and sits in the pool
    app = container(clock=clock)
    consultant = office(app, project_id)
    client_id = owned(app, project_id, consultant, "13600000005")
    clock.advance(days=1)
    asked = app.pool.request_loss(ctx(Actor(consultant, "consultant")), client_id, "price", "")
    app.pool.decide_loss(ctx(SUPERVISOR), client_id, asked.value.request_id, True, "同意")

    # When a channel reports the buyer inside the two-day window, and again after it
    void = file_report(app, project_id, "partner-x", "13600000005")
    clock.advance(days=1)
    valid = file_report(app, project_id, "partner-x", "13600000005")

    # Then the first is rejected recent_visit without naming anyone; the second counts
    assert (void["status"], void["reason"]) == ("rejected", "recent_visit")
    assert consultant not in str(void)
    assert (valid["status"], valid["reason"]) == ("accepted", None)


@pytest.mark.parametrize("comment", ["", "   "])
def test_a_loss_decision_without_a_review_comment_is_refused_and_changes_nothing(
    container: ContainerFactory, clock: FakeClock, project_id: str, comment: str
) -> None:
    app = container(clock=clock)
    consultant = office(app, project_id)
    client_id = owned(app, project_id, consultant, "13600000006")
    asked = app.pool.request_loss(ctx(Actor(consultant, "consultant")), client_id, "price", "")
    before = app.uow.position()

    for approve in (True, False):
        with pytest.raises(InvalidInput) as caught:
            app.pool.decide_loss(
                ctx(SUPERVISOR), client_id, asked.value.request_id, approve, comment
            )
        assert (caught.value.field, caught.value.code) == ("comment", "comment_required")
    assert app.uow.position() == before

    # A project that does not want comments may decide without one
    app.policies.set_policy(
        ctx(MANAGER), project_id, {**POLICY, "loss_review_comment_required": False}
    )
    app.pool.decide_loss(ctx(SUPERVISOR), client_id, asked.value.request_id, True, comment)
    assert types(app, client_id)["LossApproved"] == 1


def test_two_processors_at_once_raise_each_rule_once(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    # Given five A buyers nobody followed up, overdue and past dormant_after
    first = container(clock=clock)
    second = container(clock=clock)  # another process on the same store
    consultant = office(first, project_id)
    buyers = [owned(first, project_id, consultant, f"1360000010{i}") for i in range(5)]
    for client_id in buyers:
        first.followups.change_grade(ctx(SUPERVISOR), client_id, "A", "hot")
    clock.advance(days=3)
    first.follower.catch_up()
    second.follower.catch_up()

    # When both processors run at the same instant, twice each
    barrier = threading.Barrier(4)

    def run(processor: Container) -> int:
        barrier.wait(timeout=30)
        return processor.deadlines.run_once()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run, [first, second, first, second]))

    # Then each buyer went dormant once and was escalated once
    for client_id in buyers:
        seen = types(first, client_id)
        assert (seen["ClientWentDormant"], seen["FollowUpEscalated"]) == (1, 1), client_id
    fired = Counter(first.deadlines.fired) + Counter(second.deadlines.fired)
    assert (fired["dormant"], fired["follow_up_escalated"]) == (5, 5)
