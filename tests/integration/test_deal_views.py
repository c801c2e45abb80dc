"""The deal views on both backends: followed batch by batch they equal a rebuild from
zero, they answer the BI questions, and the deadline processor leaves buyers in a deal
alone."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from domain.values import Actor
from projections import deal_queries, queries
from projections.queries import Scope
from projections.runtime import Follower, View, ViewDB, rebuild
from tests.conftest import ContainerFactory
from tests.support import FakeClock, body_of, ctx, file_report, register_consultant, register_visit
from yingke.bootstrap import Container, all_views

DEAL_VIEWS = (
    "units",
    "deal_pipeline",
    "payment_collection",
    "commission_ledger",
    "funnel_daily",
    "channel_performance",
)
PRICE = 100_000_000


def snapshot(db: ViewDB, view: View) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in view.tables:
        rows = db.query(f"SELECT {', '.join(table.columns)} FROM {table.name}")
        out[table.name] = sorted(tuple(map(repr, table.from_db(r).values())) for r in rows)
    return out


def views() -> list[View]:
    return [v for v in all_views() if v.name in DEAL_VIEWS]


class Sales:
    """Three buyers at one project: one completes, one cancels, one swaps and is ruled
    over to another channel. Views are followed in small batches after every command."""

    def __init__(self, container: Container, clock: FakeClock, project_id: str) -> None:
        self.app: Container = container
        self.clock = clock
        self.project = project_id
        self.follower = Follower(container.store, container.views, all_views(), batch_size=3)

    def do(self, result: Any) -> dict[str, Any]:
        self.follower.catch_up()
        return body_of(result)

    def buyer(self, phone: str, partner: str | None) -> tuple[uuid.UUID, Actor]:
        consultant = register_consultant(self.app, self.project)
        if partner:
            file_report(self.app, self.project, partner, phone)
        visit = register_visit(self.app, self.project, phone, consultant, partner)
        return uuid.UUID(visit["client_id"]), Actor(consultant, "consultant")

    def units(self) -> list[uuid.UUID]:
        rows = [
            (
                f"line {n}",
                {
                    "building": "A",
                    "number": f"0{n}01",
                    "rooms": n,
                    "area": "95.5",
                    "floor": n,
                    "orientation": "south",
                    "list_price_fen": PRICE,
                },
            )
            for n in range(2, 6)
        ]
        listed = self.do(self.app.units.import_units(ctx(), self.project, rows))["units"]
        return [uuid.UUID(u["unit_id"]) for u in listed]

    def deposit_and_subscribe(self, deal: uuid.UUID, who: Actor) -> None:
        deadline = self.clock.now + timedelta(days=5)
        paid = self.app.deals.pay_deposit(
            ctx(who), deal, amount=2_000_000, method="cash", signing_deadline=deadline
        )
        self.do(paid)
        self.do(self.app.deals.sign_subscription(ctx(who), deal, price=PRICE, payment_plan="full"))


def run(sales: Sales) -> dict[str, uuid.UUID]:
    app, fin = sales.app, ctx(Actor("fin", "finance"))
    u1, u2, u3, u4 = sales.units()
    (c1, a1), (c2, a2), (c3, a3) = (
        sales.buyer("13900000001", "partner-a"),
        sales.buyer("13900000002", None),
        sales.buyer("13900000003", "partner-a"),
    )
    d1 = uuid.UUID(sales.do(app.deals.open_deal(ctx(a1), c1, u1))["deal_id"])
    d2 = uuid.UUID(sales.do(app.deals.open_deal(ctx(a2), c2, u2))["deal_id"])
    d3 = uuid.UUID(sales.do(app.deals.open_deal(ctx(a3), c3, u3))["deal_id"])
    for deal, who in ((d1, a1), (d2, a2), (d3, a3)):
        sales.deposit_and_subscribe(deal, who)
    # d1 completes
    sales.do(app.deals.receive_payment(fin, d1, amount=PRICE - 2_000_000, kind="full_payment"))
    sales.do(app.deals.sign_contract(ctx(a1), d1, contract_no="HT-1", price=PRICE))
    sales.do(app.deals.file_contract(ctx(a1), d1))
    sales.clock.advance(days=40)
    sales.do(app.deals.deliver_unit(ctx(a1), d1))
    sales.do(app.deals.issue_certificate(ctx(a1), d1))
    # d2 paid 40% and then cancelled, no fault
    sales.do(app.deals.receive_payment(fin, d2, amount=38_000_000, kind="down_payment"))
    sales.do(app.deals.cancel_deal(fin, d2, reason="family", fault="no_fault"))
    # d3 swaps to u4, subscribes again, pays 30%; then partner-b wins a ruling
    manager = ctx(Actor("mgr", "manager"))
    sales.do(app.deals.swap_unit(manager, d3, new_unit_id=u4, reason="floor"))
    sales.do(app.deals.sign_subscription(ctx(a3), d3, price=PRICE, payment_plan="full"))
    sales.do(app.deals.receive_payment(fin, d3, amount=28_000_000, kind="down_payment"))
    report_b = file_report(app, sales.project, "partner-b", "13900000003")["report_id"]
    dispute = app.disputes.open_dispute(
        ctx(Actor("agent-partner-b", "channel_agent")),
        c3,
        claimant_kind="channel",
        claimant_id="partner-b",
        reason="ours",
        evidence_versions=[1],
        report_id=report_b,
    ).value.dispute.dispute_id
    ruling = app.disputes.rule_dispute(
        manager, dispute, outcome="upheld", reason="B", evidence_versions=[1]
    )
    sales.do(ruling)
    return {"d1": d1, "d2": d2, "d3": d3, "c3": c3}


def test_deal_views_followed_in_batches_equal_a_rebuild(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    built = container(clock=clock)
    sales = Sales(built, clock, project_id)
    run(sales)
    followed = {v.name: snapshot(built.views, v) for v in views()}

    for view in views():
        rebuild(built.store, built.views, view, batch_size=7)

    assert {v.name: snapshot(built.views, v) for v in views()} == followed


def test_deal_views_answer_the_questions(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    built = container(clock=clock)
    sales = Sales(built, clock, project_id)
    ids = run(sales)
    db, scope, now = built.views, Scope(project_ids=(project_id,)), clock.now

    stages = {r["stage"]: r["deals"] for r in deal_queries.pipeline(db, scope, now)}
    assert stages == {"certified": 1, "cancelled": 1, "subscribed": 1}
    deals = deal_queries.deals(db, scope, now).items
    d3 = next(d for d in deals if d["deal_id"] == str(ids["d3"]))
    assert (d3["partner_id"], d3["basis"], d3["number"]) == ("partner-b", "ruling", "0501")
    assert d3["signing_overdue"] is True  # the 5-day deadline passed 40 days ago

    months = deal_queries.payments(db, scope)
    assert sum(m["received_fen"] for m in months) == 3 * 2_000_000 + 98_000_000 + 66_000_000
    assert sum(m["expected_fen"] for m in months) == PRICE
    assert sum(m["refunds_due_fen"] for m in months) == 40_000_000

    ledger = {(r["payee_kind"], r["payee_id"]): r for r in deal_queries.commissions(db, scope)}
    assert ledger[("channel", "partner-a")]["payable_fen"] == PRICE * 100 // 10_000
    first_stage = PRICE * 100 * 7000 // 10_000**2
    assert ledger[("channel", "partner-b")]["payable_fen"] == first_stage
    assert ledger[("channel", "partner-a")]["reversed_fen"] == first_stage

    units = deal_queries.list_units(db, project_id).items
    assert [u["status"] for u in units] == ["sold", "available", "available", "subscribed"]

    funnel = queries.funnel(db, scope)
    assert sum(r["subscribed"] for r in funnel) == 3  # d3 subscribed twice, counted once
    assert sum(r["signed"] for r in funnel) == 1
    partner_a = [r for r in queries.channels(db, scope) if r["partner_id"] == "partner-a"]
    assert sum(r["deals"] for r in partner_a) == 2
    assert sum(r["deals_cancelled"] for r in partner_a) == 0  # d2 was a walk-in


def test_the_deadline_processor_leaves_a_buyer_in_a_deal_alone(
    container: ContainerFactory, clock: FakeClock, project_id: str
) -> None:
    built = container(clock=clock)
    sales = Sales(built, clock, project_id)
    [unit, *_] = sales.units()
    client, consultant = sales.buyer("13900000009", None)
    deal = uuid.UUID(sales.do(sales.app.deals.open_deal(ctx(consultant), client, unit))["deal_id"])

    issued: list[uuid.UUID] = []
    for name in ("expire_protection", "release_inactive"):
        command = getattr(sales.app.followups, name)

        def noting(client_id: uuid.UUID, epoch: int | None, command: Any = command) -> bool:
            issued.append(client_id)
            return bool(command(client_id, epoch))

        setattr(sales.app.followups, name, noting)

    # Long after protection and inactivity ran out
    clock.advance(days=200)
    built.deadlines.run_once()

    # The processor did not even ask about the buyer, and the buyer stays owned
    assert client not in issued
    assert sales.app.clients.client(client).owner is not None
    # Once the deal is cancelled, the ordinary rules apply again
    sales.do(sales.app.deals.cancel_deal(ctx(), deal, reason="x", fault="no_fault"))
    built.deadlines.run_once()
    assert client in issued
    assert sales.app.clients.client(client).in_pool
