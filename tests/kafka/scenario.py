"""A busy fortnight at one sales office, driven through the application.

Channels report buyers (one masked 前三后四, some rejected), consultants receive visits
and walk-ins, follow up and grade, a buyer is lost to the pool and claimed back, one is
transferred and disputed, a consultant leaves, and time runs out on a report and on a
protection period through the deadline processor.

``deal_season`` then sells: units imported, a commission policy set, one deal walked
through deposit → subscription → mortgage → contract → payments → filing → delivery →
certificate, one renamed, swapped and cancelled (no fault), one cancelled after the
buyer missed the signing deadline (deposit forfeited), and one left at its contract.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from domain.values import Actor
from projections.runtime import Loop
from tests.support import FakeClock, body_of, ctx, file_report, register_consultant, register_visit
from yingke.bootstrap import Container

NAME = "张三丰"
PHONES = ("13811110001", "13811110002", "13911110003", "13811110004", "13811110005")
DEAL_PHONES = ("13722220001", "13722220002", "13722220003")
# Typed on deals and never to be published: a new buyer's name, contract, filing and
# certificate numbers, a lender, free-text reasons.
RENAMED_TO = "欧阳娜娜"
DEAL_SECRETS = (
    "欧阳",  # the buyers' surname, as reported and at the visit
    RENAMED_TO,
    "HT-2026-000731",
    "HT-2026-000732",
    "BA-2026-88017",
    "沪房权证浦字第0042号",
    "招商银行陆家嘴支行",
    "夫妻离婚改名",
    "嫌楼层太低",
    "买家资金断了",
    "错过签约期限",
    "征信不良",
)
PRICE = 300_000_000  # 三百万 in fen


@dataclass
class Story:
    project: str
    consultants: list[str]
    clients: dict[str, uuid.UUID] = field(default_factory=dict)


def busy_fortnight(c: Container, clock: FakeClock, project: str = "proj-kafka") -> Story:
    app = c
    manager = Actor(f"{project}-mgr", "manager")
    consultants = [register_consultant(app, project, f"{project}-cons-{i}") for i in (1, 2, 3)]
    app.principals.register_principal(
        ctx(), manager.id, "manager", None, [project], f"k-{uuid.uuid4()}"
    )
    app.principals.register_principal(
        ctx(), f"{project}-sup", "supervisor", None, [project], f"k-{uuid.uuid4()}", team_id="t1"
    )
    app.principals.register_principal(
        ctx(), f"{project}-agent", "channel_agent", "pa", [], f"k-{uuid.uuid4()}"
    )
    app.policies.set_policy(ctx(manager), project, {"report_validity": "P2D", "protection": "P10D"})
    story = Story(project, consultants)

    # Reports: a win, a rejection (protected), a duplicate, a masked report, a lapse.
    first = file_report(app, project, "pa", PHONES[0], name=NAME)
    clock.advance(minutes=10)
    file_report(app, project, "pb", PHONES[0], name=NAME)
    file_report(app, project, "pa", PHONES[0], name=NAME)
    file_report(app, project, "pc", "139****0003", name="李四")
    file_report(app, project, "pb", PHONES[3], name="王五")
    file_report(app, project, "pc", PHONES[4], name="赵六")
    clock.advance(hours=3)

    # Visits: report-first win, masked match, a walk-in.
    a = register_visit(app, project, PHONES[0], consultants[0], partner_id="pa", name=NAME)
    b = register_visit(app, project, PHONES[2], consultants[1], partner_id="pc", name="李四")
    w = register_visit(app, project, PHONES[1], consultants[2], name="钱七")
    story.clients = {k: uuid.UUID(v["client_id"]) for k, v in (("a", a), ("b", b), ("w", w))}
    assert first["status"] == "accepted"

    # Aftercare: follow-ups with grades, a profile, a transfer.
    clock.advance(hours=20)
    owner_a = ctx(Actor(consultants[0], "consultant"))
    app.followups.log_follow_up(
        owner_a, story.clients["a"], method="call", summary="想要三居", effective=True, grade="A"
    )
    app.followups.update_profile(
        owner_a,
        story.clients["a"],
        {"budget_min": 3_000_000, "districts": ["浦东"], "source_detail": "张三丰的同事"},
    )
    app.followups.log_follow_up(
        ctx(Actor(consultants[1], "consultant")),
        story.clients["b"],
        method="wechat",
        summary="周末再来",
        effective=False,
        grade="B",
    )
    app.followups.transfer(ctx(manager), story.clients["w"], consultants[0], "顾问请假")
    clock.advance(days=1)

    # The reports for PHONES[3] and PHONES[4] lapse; the deadline processor records it.
    clock.advance(days=1)
    settle(c)

    # A loss to the pool, and a claim back by another consultant.
    lost = app.pool.request_loss(owner_a, story.clients["w"], "price", "嫌贵")
    app.pool.decide_loss(ctx(manager), story.clients["w"], lost.value.request_id, True, "同意")
    clock.advance(hours=2)
    app.pool.claim_from_pool(
        ctx(Actor(consultants[1], "consultant")), story.clients["w"], consultants[1]
    )

    # A dispute by a channel, ruled, appealed and ruled again.
    opened = app.disputes.open_dispute(
        ctx(Actor("agent-pb", "channel_agent")),
        story.clients["a"],
        claimant_kind="consultant",
        claimant_id=consultants[2],
        reason="我先接待的",
        evidence_versions=[1],
        report_id=None,
    )
    dispute = opened.value.dispute.dispute_id
    app.disputes.rule_dispute(
        ctx(manager), dispute, outcome="upheld", reason="录像为证", evidence_versions=[1]
    )
    app.disputes.appeal_dispute(owner_a, dispute, "录像时间不对")
    app.disputes.rule_dispute(
        ctx(manager), dispute, outcome="dismissed", reason="复核", evidence_versions=[1]
    )

    # A consultant leaves; their buyers move to a colleague.
    app.departures.start_departure(ctx(manager), consultants[1], consultants[2])
    settle(c)

    # Protection runs out for whoever is left unprotected.
    clock.advance(days=12)
    settle(c)
    return story


def deal_season(c: Container, clock: FakeClock, project: str) -> dict[str, uuid.UUID]:
    """Deals at ``project`` (after ``busy_fortnight``): every deal and unit event type."""
    app = c
    manager = ctx(Actor(f"{project}-mgr", "manager"))
    finance = ctx(Actor(f"{project}-fin", "finance"))
    app.policies.set_commission_policy(
        manager, project, {"default_channel_rate_bp": 150, "channel_rates_bp": {"pa": 200}}
    )
    rows = [
        (
            f"line {n}",
            {
                "building": "3栋",
                "number": f"{n}01",
                "rooms": 3,
                "area": "95.55",
                "floor": n,
                "orientation": "north_south",
                "list_price_fen": PRICE,
            },
        )
        for n in range(10, 15)
    ]
    units = [
        uuid.UUID(u["unit_id"])
        for u in body_of(app.units.import_units(manager, project, rows))["units"]
    ]
    revised = {**rows[4][1], "list_price_fen": PRICE + 1_000_000, "area": "96.1"}
    app.units.import_units(manager, project, [("line 14 again", revised)])

    buyers: list[tuple[uuid.UUID, Any]] = []
    for phone, partner in zip(DEAL_PHONES, ("pa", None, "pb"), strict=True):
        consultant = register_consultant(app, project)
        if partner:
            file_report(app, project, partner, phone, name="欧阳先生")
        visit = register_visit(app, project, phone, consultant, partner, name="欧阳先生")
        buyers.append((uuid.UUID(visit["client_id"]), ctx(Actor(consultant, "consultant"))))
    deals = {}
    for key, (client, who), unit in zip(("full", "swap", "lapse"), buyers, units[:3], strict=True):
        deals[key] = app.deals.open_deal(who, client, unit).value.deal.id
        deadline = clock.now + timedelta(days=7)
        app.deals.pay_deposit(
            who, deals[key], amount=5_000_000, method="wechat_pay", signing_deadline=deadline
        )
    clock.advance(hours=4)

    # full: subscription, mortgage, contract, payments, filing, delivery, certificate.
    full, who = deals["full"], buyers[0][1]
    app.deals.sign_subscription(who, full, price=PRICE, payment_plan="mortgage")
    app.deals.receive_payment(finance, full, amount=85_000_000, kind="down_payment")
    app.deals.apply_loan(who, full, bank="招商银行陆家嘴支行", amount=210_000_000)
    app.deals.refuse_loan(who, full, reason="征信不良")
    app.deals.apply_loan(who, full, bank="招商银行陆家嘴支行", amount=210_000_000)
    app.deals.approve_loan(who, full)
    app.deals.sign_contract(who, full, contract_no="HT-2026-000731", price=PRICE)
    # A channel wins a dispute over the buyer: the deal and its commission follow.
    report = file_report(app, project, "pc", DEAL_PHONES[0])["report_id"]
    dispute = app.disputes.open_dispute(
        ctx(Actor("agent-pc", "channel_agent")),
        buyers[0][0],
        claimant_kind="channel",
        claimant_id="pc",
        reason="我们先报备的",
        evidence_versions=[1],
        report_id=report,
    ).value.dispute.dispute_id
    app.disputes.rule_dispute(
        manager, dispute, outcome="upheld", reason="报备在先", evidence_versions=[1]
    )
    clock.advance(days=3)
    app.deals.receive_payment(finance, full, amount=210_000_000, kind="loan_disbursement")
    app.deals.file_contract(who, full, filing_no="BA-2026-88017")
    clock.advance(days=40)
    app.deals.deliver_unit(who, full)
    app.deals.issue_certificate(who, full, certificate_no="沪房权证浦字第0042号")

    # swap: renamed, moved to another unit, subscribed, paid, then cancelled (no fault).
    swap, who = deals["swap"], buyers[1][1]
    app.deals.rename_buyer(manager, swap, buyer_name=RENAMED_TO, reason="夫妻离婚改名")
    app.deals.swap_unit(manager, swap, new_unit_id=units[3], reason="嫌楼层太低")
    app.deals.sign_subscription(who, swap, price=PRICE, payment_plan="full")
    app.deals.receive_payment(finance, swap, amount=95_000_000, kind="down_payment")
    app.deals.sign_contract(who, swap, contract_no="HT-2026-000732", price=PRICE)
    app.deals.cancel_deal(finance, swap, reason="买家资金断了", fault="no_fault")

    # lapse: no contract 43 days after the deposit, so the manager was asked in (the
    # deadline processor's command); the signing deadline passed long ago, the deposit
    # is forfeited.
    assert app.deals.escalate_negotiation(deals["lapse"])
    app.deals.cancel_deal(
        finance, deals["lapse"], reason="错过签约期限", fault="buyer_missed_deadline"
    )
    settle(c)
    return deals


def settle(c: Container) -> None:
    """Let the deadline processor act until nothing is left, with the views following
    (a departure waits for them between moves, as in ``yingke serve``)."""
    loop = Loop("views", c.follower.run_once, 0.01)
    loop.start()
    try:
        while True:
            c.follower.catch_up()
            if not c.deadlines.run_once():
                break
    finally:
        loop.stop()
    c.follower.catch_up()
