"""A realistic month at one sales office, driven through the application, for the views.

Three channels report buyers (one masked 前三后四, some rejected), consultants receive
visits, follow up with grades, give buyers up (战败), claim them back from the public
pool (公海池), get buyers transferred and disputed, one consultant leaves, and time runs
out on reports and protection through the deadline processor.

``follow`` is called between commands: the tests decide there how the views keep up
(small batches, crashes, nothing at all). ``catch_up`` must bring them fully up to date:
the deadline processor and a departure read what is due from the views.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from domain.services.uow import Done
from domain.values import Actor
from projections import due
from projections.runtime import ViewDB
from projections.sql import ts
from tests.support import FakeClock, ctx, file_report, register_visit
from yingke.bootstrap import Container
from yingke.deadlines import DeadlineProcessor

PROJECT = "proj-views"
OTHER_PROJECT = "proj-views-masked-off"
PARTNERS = ("pa", "pb", "pc")
CONSULTANTS = ("c1", "c2", "c3", "c4")
SUPERVISOR = "sup1"
MANAGER = "mgr1"
TEAM = "team-1"

# Buyers by role in the story; the masked pattern of PHONES["masked"] is 139****0003.
PHONES = {
    "p1": "13800000001",
    "p2": "13800000002",
    "masked": "13900000003",
    "p4": "13800000004",
    "p5": "13800000005",
    "walkin": "13800000006",
    "p7": "13800000007",
    "other": "13800000008",
}
MASKED = "139****0003"


@dataclass
class Story:
    """What happened, for the spot checks."""

    clients: dict[str, str] = field(default_factory=dict)  # role → client id
    events_before_expiry: int = 0
    expected_expired_releases: int = 0


def consultant(cid: str) -> Actor:
    return Actor(cid, "consultant")


def run_scenario(
    app: Container,
    clock: FakeClock,
    db: ViewDB,
    deadlines: DeadlineProcessor,
    follow: Callable[[], object],
    catch_up: Callable[[], object],
) -> Story:
    story = Story()
    manager = Actor(MANAGER, "manager")

    def step(result: Any = None) -> Any:
        follow()
        return result.value if isinstance(result, Done) else result

    def client_of(role: str) -> uuid.UUID:
        return uuid.UUID(story.clients[role])

    # ---- principals: a team of consultants, a supervisor, a manager
    for cid in CONSULTANTS:
        team = TEAM if cid in ("c1", "c2") else "team-2"
        step(
            app.principals.register_principal(
                ctx(), cid, "consultant", None, [PROJECT], f"k-{cid}", team
            )
        )
    step(
        app.principals.register_principal(
            ctx(), SUPERVISOR, "supervisor", None, [PROJECT], "k-s", TEAM
        )
    )
    step(app.principals.register_principal(ctx(), MANAGER, "manager", None, [PROJECT], "k-m"))
    step(app.policies.set_policy(ctx(), OTHER_PROJECT, {"masked_reports": "forbidden"}))

    # ---- day 0: reports (报备), including a masked one and rejections
    r1 = step(file_report(app, PROJECT, "pa", PHONES["p1"]))
    story.clients["p1"] = r1["client_id"]
    clock.advance(minutes=3)
    assert step(file_report(app, PROJECT, "pb", PHONES["p1"]))["reason"] == "protected"
    assert step(file_report(app, PROJECT, "pa", PHONES["p1"]))["reason"] == "duplicate"
    story.clients["p2"] = step(file_report(app, PROJECT, "pb", PHONES["p2"]))["client_id"]
    assert step(file_report(app, PROJECT, "pc", MASKED))["status"] == "accepted"
    clock.advance(minutes=1)
    assert step(file_report(app, PROJECT, "pa", MASKED))["status"] == "accepted"
    assert step(file_report(app, PROJECT, "pc", MASKED))["reason"] == "duplicate"
    story.clients["p4"] = step(file_report(app, PROJECT, "pc", PHONES["p4"]))["client_id"]
    story.clients["p5"] = step(file_report(app, PROJECT, "pa", PHONES["p5"]))["client_id"]
    story.clients["p7"] = step(file_report(app, PROJECT, "pb", PHONES["p7"]))["client_id"]
    masked_off = step(file_report(app, OTHER_PROJECT, "pa", MASKED))
    assert masked_off["reason"] == "masked_not_allowed"

    # ---- an hour later: visits (到访) decide ownership (判客)
    clock.advance(hours=1)
    assert step(register_visit(app, PROJECT, PHONES["p1"], "c1", "pa"))["outcome"] == "report"
    masked_visit = step(register_visit(app, PROJECT, PHONES["masked"], "c2"))
    assert masked_visit["owner"]["partner_id"] == "pc"  # the earlier masked report wins
    story.clients["masked"] = masked_visit["client_id"]
    walkin = step(register_visit(app, PROJECT, PHONES["walkin"], "c1"))
    assert walkin["outcome"] == "walk_in"
    story.clients["walkin"] = walkin["client_id"]
    assert step(register_visit(app, PROJECT, PHONES["p2"], "c2", "pb"))["outcome"] == "report"
    assert step(register_visit(app, PROJECT, PHONES["p5"], "c3", "pa"))["outcome"] == "report"
    assert step(register_visit(app, PROJECT, PHONES["p7"], "c4", "pb"))["outcome"] == "report"
    # A channel reporting a protected buyer is refused "protected".
    assert step(file_report(app, PROJECT, "pb", PHONES["p1"]))["reason"] == "protected"

    # ---- follow-ups (跟进) with grades, and a consultant's own next contact
    clock.advance(hours=2)
    step(
        app.followups.log_follow_up(
            ctx(consultant("c1")),
            client_of("p1"),
            method="call",
            summary="s",
            effective=True,
            grade="A",
        )
    )
    step(
        app.followups.log_follow_up(
            ctx(consultant("c2")),
            client_of("p2"),
            method="wechat",
            summary="s",
            effective=False,
            next_contact_at=clock.now + timedelta(days=2),
        )
    )
    step(app.followups.change_grade(ctx(consultant("c1")), client_of("walkin"), "C", "cold"))
    step(
        app.followups.log_follow_up(
            ctx(consultant("c3")),
            client_of("p5"),
            method="visit",
            summary="s",
            effective=True,
            grade="B",
        )
    )

    # ---- day 4: unvisited reports run out (deadline processor)
    clock.advance(days=4)
    catch_up()
    expired = deadlines.fired["report_expired"]
    deadlines.run_once()  # the working-day rules fire too (escalations past a day)
    assert deadlines.fired["report_expired"] - expired == 2  # pc's on p4, pa's masked one
    step()

    # ---- losses (战败): one rejected, two approved
    loss = step(app.pool.request_loss(ctx(consultant("c2")), client_of("p2"), "price", "too dear"))
    step(app.pool.decide_loss(ctx(manager), client_of("p2"), loss.request_id, True, "ok"))
    loss = step(
        app.pool.request_loss(ctx(consultant("c1")), client_of("walkin"), "location", "far")
    )
    step(app.pool.decide_loss(ctx(manager), client_of("walkin"), loss.request_id, False, "try"))
    loss = step(
        app.pool.request_loss(
            ctx(consultant("c1")), client_of("walkin"), "bought_elsewhere", "gone"
        )
    )
    step(app.pool.decide_loss(ctx(manager), client_of("walkin"), loss.request_id, True, "ok"))

    # ---- the pool (公海池): c3 claims the lost buyer, who comes back for a visit
    clock.advance(hours=3)
    step(app.pool.claim_from_pool(ctx(consultant("c3")), client_of("p2"), "c3"))
    clock.advance(days=1)
    assert step(register_visit(app, PROJECT, PHONES["p2"], "c3"))["outcome"] == "protected"

    # ---- a manager's transfer, and a dispute upheld then reversed on appeal
    step(app.followups.transfer(ctx(manager), client_of("p1"), "c3", "c1 is overloaded"))
    dispute = step(
        app.disputes.open_dispute(
            ctx(consultant("c2")),
            client_of("p5"),
            claimant_kind="consultant",
            claimant_id="c2",
            reason="I met them first",
            evidence_versions=[1],
            report_id=None,
        )
    )
    step(
        app.disputes.rule_dispute(
            ctx(manager),
            dispute.dispute.dispute_id,
            outcome="upheld",
            reason="evidence",
            evidence_versions=[1],
        )
    )
    step(app.disputes.appeal_dispute(ctx(consultant("c3")), dispute.dispute.dispute_id, "not so"))
    step(
        app.disputes.rule_dispute(
            ctx(manager),
            dispute.dispute.dispute_id,
            outcome="dismissed",
            reason="appeal",
            evidence_versions=[1, 2],
        )
    )
    step(
        app.followups.log_follow_up(
            ctx(consultant("c4")),
            client_of("p7"),
            method="call",
            summary="s",
            effective=True,
            grade="C",
            next_contact_at=clock.now + timedelta(days=1),
        )
    )

    # ---- c4 leaves (离职): their buyers go to c1, as the departure worker would do it
    step(app.departures.start_departure(ctx(manager), "c4", "c1"))
    catch_up()
    for client_id in due.owned_by(db, "c4", 500, movable_to_pool=False):
        step(app.departures.move_departing_client(ctx(manager), "c4", uuid.UUID(client_id)))
    catch_up()
    assert due.owned_by(db, "c4", 500, movable_to_pool=False) == []
    step(app.departures.complete_departure(ctx(manager), "c4"))

    # ---- a month later protection (保护期) has run out for every buyer still owned
    clock.advance(days=31)
    catch_up()
    rows = db.query(
        "SELECT count(*) FROM client_overview WHERE status = 'owned' AND protected_until <= %s",
        (ts(db.dialect, clock()),),
    )
    story.expected_expired_releases = int(rows[0][0])
    story.events_before_expiry = app.position()
    deadlines.run_once()
    step()

    # ---- and a released buyer is claimed back and visits again
    clock.advance(hours=5)
    step(app.pool.claim_from_pool(ctx(consultant("c2")), client_of("p1"), "c2"))
    clock.advance(hours=1)
    assert step(register_visit(app, PROJECT, PHONES["p1"], "c2"))["outcome"] == "protected"
    catch_up()
    return story
