"""A busy fortnight at one sales office, driven through the application.

Channels report buyers (one masked 前三后四, some rejected), consultants receive visits
and walk-ins, follow up and grade, a buyer is lost to the pool and claimed back, one is
transferred and disputed, a consultant leaves, and time runs out on a report and on a
protection period through the deadline processor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from domain.values import Actor
from projections.runtime import Loop
from tests.support import FakeClock, ctx, file_report, register_consultant, register_visit
from yingke.bootstrap import Container

NAME = "张三丰"
PHONES = ("13811110001", "13811110002", "13911110003", "13811110004", "13811110005")


@dataclass
class Story:
    project: str
    consultants: list[str]
    clients: dict[str, uuid.UUID] = field(default_factory=dict)


def busy_fortnight(c: Container, clock: FakeClock, project: str = "proj-kafka") -> Story:
    app = c.app
    manager = Actor(f"{project}-mgr", "manager")
    consultants = [register_consultant(app, project, f"{project}-cons-{i}") for i in (1, 2, 3)]
    app.register_principal(ctx(), manager.id, "manager", None, [project], f"k-{uuid.uuid4()}")
    app.register_principal(
        ctx(), f"{project}-sup", "supervisor", None, [project], f"k-{uuid.uuid4()}", team_id="t1"
    )
    app.register_principal(
        ctx(), f"{project}-agent", "channel_agent", "pa", [], f"k-{uuid.uuid4()}"
    )
    app.set_policy(ctx(manager), project, {"report_validity": "P2D", "protection": "P10D"})
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
    app.log_follow_up(
        owner_a, story.clients["a"], method="call", summary="想要三居", effective=True, grade="A"
    )
    app.update_profile(
        owner_a,
        story.clients["a"],
        {"budget_min": 3_000_000, "districts": ["浦东"], "source_detail": "张三丰的同事"},
    )
    app.log_follow_up(
        ctx(Actor(consultants[1], "consultant")),
        story.clients["b"],
        method="wechat",
        summary="周末再来",
        effective=False,
        grade="B",
    )
    app.transfer(ctx(manager), story.clients["w"], consultants[0], "顾问请假")
    clock.advance(days=1)

    # The reports for PHONES[3] and PHONES[4] lapse; the deadline processor records it.
    clock.advance(days=1)
    settle(c)

    # A loss to the pool, and a claim back by another consultant.
    lost = app.request_loss(owner_a, story.clients["w"], "price", "嫌贵")
    app.decide_loss(ctx(manager), story.clients["w"], lost.body["request_id"], True, "同意")
    clock.advance(hours=2)
    app.claim_from_pool(
        ctx(Actor(consultants[1], "consultant")), story.clients["w"], consultants[1]
    )

    # A dispute by a channel, ruled, appealed and ruled again.
    opened = app.open_dispute(
        ctx(Actor("agent-pb", "channel_agent")),
        story.clients["a"],
        claimant_kind="consultant",
        claimant_id=consultants[2],
        reason="我先接待的",
        evidence_versions=[1],
        report_id=None,
    )
    dispute = opened.body["dispute_id"]
    app.rule_dispute(
        ctx(manager), dispute, outcome="upheld", reason="录像为证", evidence_versions=[1]
    )
    app.appeal_dispute(owner_a, dispute, "录像时间不对")
    app.rule_dispute(
        ctx(manager), dispute, outcome="dismissed", reason="复核", evidence_versions=[1]
    )

    # A consultant leaves; their buyers move to a colleague.
    app.start_departure(ctx(manager), consultants[1], consultants[2])
    settle(c)

    # Protection runs out for whoever is left unprotected.
    clock.advance(days=12)
    settle(c)
    return story


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
