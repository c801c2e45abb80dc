"""Notifications to people without Kafka: the outbox view planned from events, the sender
delivering to a real local receiver, on SQLite and PostgreSQL, on an injected clock.

PostgreSQL tests share one database, so every assertion counts only what mentions the
test's own project (another test's notifications may reach this receiver too)."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest

from domain.values import Actor
from tests.receivers import Post, Receiver, serving
from tests.support import FakeClock, ctx, register_consultant, register_visit, unique
from yingke.bootstrap import Container, build
from yingke.notify import WeComApp
from yingke.settings import Settings


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as state:
        yield state


def team(app: Container, project: str) -> tuple[str, str, str]:
    """A consultant and their supervisor (one team), and a manager of the project."""
    team_id = unique("team")
    consultant, supervisor, manager = unique("cons"), unique("sup"), unique("mgr")
    for pid, role in ((consultant, "consultant"), (supervisor, "supervisor"), (manager, "manager")):
        app.principals.register_principal(
            ctx(),
            pid,
            role,
            None,
            [project],
            f"key-{uuid.uuid4().hex}",
            team_id=None if role == "manager" else team_id,
        )
    return consultant, supervisor, manager


def fire(app: Container) -> None:
    """One turn of the workers before sending: views follow, deadlines fire, views follow."""
    app.follower.catch_up()
    app.deadlines.run_once()
    app.follower.catch_up()


def kinds(posts: list[Post]) -> Counter[str]:
    return Counter(p.content.split("**")[1] for p in posts)


def outbox(app: Container, project: str) -> list[dict[str, Any]]:
    rows = app.views.query(
        "SELECT n.notification_id, n.kind, n.recipient_id, n.cancelled, d.status, d.attempts, "
        "d.channel FROM notifications n LEFT JOIN notification_delivery d "
        "ON d.notification_id = n.notification_id WHERE n.project_id = %s",
        (project,),
    )
    names = ("id", "kind", "recipient", "cancelled", "status", "attempts", "channel")
    return [dict(zip(names, r, strict=True)) for r in rows]


def test_a_person_is_told_of_the_overdue_follow_up_once_across_worker_restarts(
    settings: Settings, receiver: Receiver
) -> None:
    settings = replace(settings, notify_webhook=f"{receiver.url}/cgi-bin/webhook/send?key=k")
    clock = FakeClock()
    app = build(settings, clock=clock)
    try:
        project = unique("proj")
        consultant, supervisor, _ = team(app, project)
        register_visit(app, project, "13855550001", consultant)
        app.follower.catch_up()
        assert app.notifier is not None
        # the first follow-up is due 24 h after the visit: nothing is due yet
        app.notifier.run_once()
        assert receiver.about(project) == []
        clock.advance(hours=24, minutes=1)
        app.notifier.run_once()
        app.notifier.run_once()  # a second sweep finds nothing new
    finally:
        app.close()
    told = receiver.about(project)
    assert kinds(told) == Counter({"跟进即将到期": 1, "跟进已逾期": 1})
    assert all(consultant in p.content for p in told)  # the group is told whom it is for
    assert all("138****0001" in p.content and "13855550001" not in p.content for p in told)
    assert all(p.body["msgtype"] == "markdown" for p in told)

    # A restarted worker (a new process on the same stores) sends nothing again, and the
    # escalation comes a day later, to the supervisor.
    again = build(settings, clock=clock)
    try:
        again.follower.catch_up()
        assert again.notifier is not None
        again.notifier.run_once()
        assert len(receiver.about(project)) == 2
        clock.advance(days=1)
        fire(again)  # the deadline processor escalates under the policy's escalate_after
        again.notifier.run_once()
    finally:
        again.close()
    third = build(settings, clock=clock)
    try:
        assert third.notifier is not None
        third.notifier.run_once()
        rows = outbox(third, project)
    finally:
        third.close()
    told = receiver.about(project)
    assert kinds(told) == Counter(
        {"跟进即将到期": 1, "跟进已逾期": 1, "跟进逾期未处理，请主管介入": 1}
    )
    escalated = next(p for p in told if "主管" in p.content)
    assert supervisor in escalated.content
    assert all(receiver.delivered[p.notification_id] == 1 for p in told)
    sent = {r["kind"]: r for r in rows if r["status"] == "sent"}
    assert set(sent) == {"follow_up_due", "follow_up_overdue", "follow_up_escalated"}
    assert {r["attempts"] for r in sent.values()} == {1}
    assert {r["channel"] for r in sent.values()} == {"group"}
    assert sent["follow_up_escalated"]["recipient"] == supervisor


def test_a_failing_receiver_is_retried_with_doubling_backoff_then_given_up(
    settings: Settings, receiver: Receiver
) -> None:
    settings = replace(
        settings,
        notify_webhook=f"{receiver.url}/hook",
        reminder_max_attempts=4,
        reminder_backoff=30.0,
    )
    clock = FakeClock()
    app = build(settings, clock=clock)
    try:
        project = unique("proj")
        consultant, _, _ = team(app, project)
        register_visit(app, project, "13855550002", consultant)
        app.follower.catch_up()
        sender = app.notifier
        assert sender is not None
        # The receiver's clock is the sender's: the test asserts the schedule itself.
        receiver.now = lambda: clock().timestamp()
        receiver.answer = lambda post, attempt: (503, {"errcode": -1})
        clock.advance(hours=23)  # the "due soon" notice (2 h before) only
        just = timedelta(milliseconds=1).total_seconds()

        def mine() -> list[Post]:
            return receiver.about(project)

        sender.run_once()
        assert len(mine()) == 1
        for wait in (30.0, 60.0, 120.0):
            clock.advance(seconds=wait - just)
            sender.run_once()
            assert len(mine()) == 1 + [30.0, 60.0, 120.0].index(wait), "retried too early"
            clock.advance(seconds=just)
            sender.run_once()
        clock.advance(minutes=10)
        sender.run_once()
        rows = [r for r in outbox(app, project) if r["kind"] == "follow_up_due"]
    finally:
        app.close()
    (post, *_) = mine()
    attempts = receiver.attempts(post.notification_id)
    assert [b - a for a, b in pairwise(attempts)] == [30.0, 60.0, 120.0]
    assert rows[0]["status"] == "failed" and rows[0]["attempts"] == 4
    assert receiver.delivered[post.notification_id] == 0


def test_approvals_are_asked_of_the_supervisor_and_answered_to_the_requester(
    settings: Settings, receiver: Receiver
) -> None:
    settings = replace(settings, notify_webhook=f"{receiver.url}/hook")
    clock = FakeClock()
    app = build(settings, clock=clock)
    try:
        project = unique("proj")
        consultant, supervisor, _ = team(app, project)
        client = uuid.UUID(register_visit(app, project, "13855550003", consultant)["client_id"])
        asked = app.pool.request_loss(ctx(Actor(consultant, "consultant")), client, "price", "嫌贵")
        assert asked.outcome is not None
        app.pool.decide_loss(
            ctx(Actor(supervisor, "supervisor")),
            client,
            asked.outcome.request_id,
            True,
            "同意，客户已在别处购房",
        )
        app.follower.catch_up()
        assert app.notifier is not None
        app.notifier.run_once()
        rows = outbox(app, project)
    finally:
        app.close()
    by_kind = {r["kind"]: r for r in rows if r["kind"].startswith("approval")}
    assert by_kind["approval_requested"]["recipient"] == supervisor
    assert by_kind["approval_decided"]["recipient"] == consultant
    # released to the pool: the follow-up notices planned at the visit are withdrawn
    follow_ups = [r for r in rows if r["kind"].startswith("follow_up")]
    assert follow_ups and all(r["cancelled"] for r in follow_ups)
    told = receiver.about(project)
    assert kinds(told) == Counter({"有待审批的申请": 1, "申请已审批": 1})
    decided = next(p for p in told if "申请已审批" in p.content)
    assert "战败申请已通过" in decided.content and supervisor in decided.content
    assert "同意" not in decided.content  # free text stays out of notifications


def test_a_pool_claim_approved_is_told_to_the_claimant_and_messages_speak_chinese_names(
    settings: Settings, receiver: Receiver
) -> None:
    """The claimant hears that their claim (捞客) passed; the loss reason reads as a word
    (价格, not ``price``) and the claimant of a dispute by name, like every other person."""
    settings = replace(settings, notify_webhook=f"{receiver.url}/hook")
    clock = FakeClock()
    app = build(settings, clock=clock)
    try:
        project = unique("proj")
        consultant, supervisor, manager = team(app, project)
        claimant = unique("cons")
        colleague = app.principals.principal(consultant)
        assert colleague is not None
        app.principals.register_principal(
            ctx(),
            claimant,
            "consultant",
            None,
            [project],
            f"key-{uuid.uuid4().hex}",
            team_id=colleague.team_id,
            display_name="陈明",
        )
        app.policies.set_policy(
            ctx(Actor(manager, "manager")), project, {"pool_claim_approval": True}
        )
        lost = uuid.UUID(register_visit(app, project, "13855550006", consultant)["client_id"])
        kept = uuid.UUID(register_visit(app, project, "13855550007", consultant)["client_id"])
        asked = app.pool.request_loss(ctx(Actor(consultant, "consultant")), lost, "price", "")
        assert asked.outcome is not None
        supervising = ctx(Actor(supervisor, "supervisor"))
        app.pool.decide_loss(supervising, lost, asked.outcome.request_id, True, "同意")
        claim = app.pool.claim_from_pool(ctx(Actor(claimant, "consultant")), lost, claimant)
        assert claim.outcome is not None and claim.outcome.status == "pending"
        app.pool.decide_claim(supervising, lost, claim.outcome.claim_id, True, "")
        app.disputes.open_dispute(
            ctx(Actor(claimant, "consultant")),
            kept,
            claimant_kind="consultant",
            claimant_id=claimant,
            reason="我先接待的",
            evidence_versions=[1],
            report_id=None,
        )
        app.follower.catch_up()
        assert app.notifier is not None
        app.notifier.run_once()
        rows = outbox(app, project)
    finally:
        app.close()
    decided = Counter(r["recipient"] for r in rows if r["kind"] == "approval_decided")
    assert decided == Counter({consultant: 1, claimant: 1})
    told = receiver.about(project)
    passed = [p.content for p in told if "捞客申请已通过" in p.content]
    assert len(passed) == 1 and "陈明" in passed[0]  # the group names the person told
    asked_loss = next(p.content for p in told if "申请：战败申请" in p.content)
    assert "原因：价格" in asked_loss and "price" not in asked_loss
    opened = next(p.content for p in told if "有新的申诉待裁决" in p.content)
    assert "申诉方：置业顾问 陈明" in opened and claimant not in opened


def test_an_appeal_asks_the_managers_to_rule_again_and_the_final_ruling_reaches_the_parties(
    settings: Settings, receiver: Receiver
) -> None:
    """An appeal (复议) waits in the managers' inbox; they hear of it as of the dispute."""
    settings = replace(settings, notify_webhook=f"{receiver.url}/hook")
    clock = FakeClock()
    app = build(settings, clock=clock)
    try:
        project = unique("proj")
        consultant, _, manager = team(app, project)
        claimant = register_consultant(app, project)
        client = uuid.UUID(register_visit(app, project, "13855550008", consultant)["client_id"])
        opened = app.disputes.open_dispute(
            ctx(Actor(claimant, "consultant")),
            client,
            claimant_kind="consultant",
            claimant_id=claimant,
            reason="我先接待的",
            evidence_versions=[1],
            report_id=None,
        )
        assert opened.outcome is not None
        dispute_id = opened.outcome.dispute.dispute_id

        def rule() -> None:
            app.disputes.rule_dispute(
                ctx(Actor(manager, "manager")),
                dispute_id,
                outcome="dismissed",
                reason="到访在先",
                evidence_versions=[1],
            )

        rule()
        app.disputes.appeal_dispute(ctx(Actor(claimant, "consultant")), dispute_id, "有新证据")
        rule()
        app.follower.catch_up()
        assert app.notifier is not None
        app.notifier.run_once()
        rows = outbox(app, project)
    finally:
        app.close()
    told = Counter((r["kind"], r["recipient"]) for r in rows if r["status"] == "sent")
    assert told[("appeal_opened", manager)] == 1
    assert told[("dispute_ruled", claimant)] == told[("dispute_ruled", consultant)] == 2
    appeal = [p.content for p in receiver.about(project) if "申诉人已申请复议" in p.content]
    assert len(appeal) == 1 and "有新证据" not in appeal[0]  # the reason stays sealed


def test_the_json_format_gives_a_webhook_plain_fields(
    settings: Settings, receiver: Receiver
) -> None:
    settings = replace(
        settings, notify_webhook=f"{receiver.url}/hook", notify_webhook_format="json"
    )
    clock = FakeClock()
    app = build(settings, clock=clock)
    try:
        project = unique("proj")
        consultant = register_consultant(app, project)
        register_visit(app, project, "13855550004", consultant)
        app.follower.catch_up()
        clock.advance(hours=25)
        assert app.notifier is not None
        app.notifier.run_once()
    finally:
        app.close()
    bodies = [p.body for p in receiver.about(project)]
    assert sorted(b["kind"] for b in bodies) == ["follow_up_due", "follow_up_overdue"]
    assert all(b["recipient_id"] == consultant and b["project_id"] == project for b in bodies)
    assert all(json.dumps(b, ensure_ascii=False).count("13855550004") == 0 for b in bodies)


def test_a_notice_that_came_due_long_ago_is_recorded_stale_not_sent(
    settings: Settings, receiver: Receiver
) -> None:
    settings = replace(settings, notify_webhook=f"{receiver.url}/hook")
    clock = FakeClock()
    app = build(settings, clock=clock)
    try:
        project = unique("proj")
        consultant = register_consultant(app, project)
        register_visit(app, project, "13855550005", consultant)
        app.follower.catch_up()
        clock.advance(days=3)  # the worker was down: due and overdue are two days old
        fire(app)
        assert app.notifier is not None
        app.notifier.run_once()
        statuses = {r["kind"]: r["status"] for r in outbox(app, project)}
    finally:
        app.close()
    assert statuses["follow_up_due"] == statuses["follow_up_overdue"] == "stale"
    assert statuses["follow_up_escalated"] == "sent"  # due a day after: still news
    assert kinds(receiver.about(project)) == Counter({"跟进逾期未处理，请主管介入": 1})


def test_wecom_application_messages_fetch_a_token_once_and_renew_it_when_refused(
    receiver: Receiver,
) -> None:
    clock = FakeClock()
    refused = {"once": False}

    def answer(post: Post, attempt: int) -> tuple[int, dict[str, Any]]:
        if post.notification_id == "n-2" and not refused["once"]:
            refused["once"] = True
            return 200, {"errcode": 42001, "errmsg": "access_token expired"}
        return 200, {"errcode": 0, "errmsg": "ok", "invaliduser": ""}

    receiver.answer = answer
    wecom = WeComApp(receiver.url, "corp", "secret", 1000002, clock)
    wecom.send("zhangsan", "**跟进已逾期**", "n-1")
    wecom.send("zhangsan", "**跟进已逾期**", "n-1")  # the same token: no second gettoken
    assert receiver.tokens_issued == 1
    wecom.send("lisi", "**保护期即将结束**", "n-2")  # expired early: renewed, then sent
    assert receiver.tokens_issued == 2
    clock.advance(hours=2)  # past expires_in less the margin: fetched again
    wecom.send("lisi", "**保护期即将结束**", "n-3")
    assert receiver.tokens_issued == 3
    sends = [p for p in receiver.posts if p.path == "/cgi-bin/message/send"]
    assert [p.body["touser"] for p in sends] == ["zhangsan", "zhangsan", "lisi", "lisi", "lisi"]
    assert all(p.body["msgtype"] == "markdown" and p.body["agentid"] == 1000002 for p in sends)
    assert [p.notification_id for p in sends] == ["n-1", "n-1", "n-2", "n-2", "n-3"]


def test_each_person_is_reached_on_their_own_channel_and_the_rest_through_the_group(
    settings: Settings, receiver: Receiver
) -> None:
    settings = replace(
        settings,
        notify_webhook=f"{receiver.url}/group",
        wecom_api_base=receiver.url,
        wecom_corp_id="ww-corp",
        wecom_corp_secret="corp-secret",
        wecom_agent_id=1000002,
    )
    clock = FakeClock()
    app = build(settings, clock=clock)
    try:
        project = unique("proj")
        on_wecom, on_webhook, on_nothing = unique("c"), unique("c"), unique("c")
        people: list[tuple[str, dict[str, str]]] = [
            (on_wecom, {"display_name": "王晓", "wecom_user_id": "WangXiao"}),
            (on_webhook, {"display_name": "李娜", "notify_webhook": f"{receiver.url}/mine"}),
            (on_nothing, {"display_name": "赵磊"}),
        ]
        for pid, profile in people:
            app.principals.register_principal(
                ctx(), pid, "consultant", None, [project], f"key-{uuid.uuid4().hex}", **profile
            )
        for i, (pid, _) in enumerate(people):
            register_visit(app, project, f"1385555010{i}", pid)
        app.follower.catch_up()
        clock.advance(hours=22, minutes=1)  # "due soon" for all three
        assert app.notifier is not None
        app.notifier.run_once()
        # the webhook person moves to WeCom: the next notice follows the new address
        app.principals.change_profile(
            ctx(), on_webhook, {"notify_webhook": None, "wecom_user_id": "LiNa"}
        )
        clock.advance(hours=2)
        app.notifier.run_once()
        rows = outbox(app, project)
    finally:
        app.close()
    paths = Counter(
        (p.path, p.body.get("touser")) for p in receiver.posts if p.path != "/cgi-bin/gettoken"
    )
    assert paths[("/cgi-bin/message/send", "WangXiao")] == 2
    assert paths[("/mine", None)] == 1
    assert paths[("/cgi-bin/message/send", "LiNa")] == 1
    group = [p for p in receiver.posts if p.path == "/group"]
    assert len(group) == 2 and all("赵磊" in p.content for p in group)
    channels = Counter((r["recipient"], r["channel"]) for r in rows if r["status"] == "sent")
    assert channels == Counter(
        {
            (on_wecom, "wecom_app"): 2,
            (on_webhook, "webhook"): 1,
            (on_webhook, "wecom_app"): 1,
            (on_nothing, "group"): 2,
        }
    )
    wecom = [p for p in receiver.posts if p.path == "/cgi-bin/message/send"]
    assert all("跟进" in p.body["markdown"]["content"] for p in wecom)
    # one token per two hours (less a margin), whatever the number of messages
    assert [p.query["access_token"] for p in wecom] == ["token-1", "token-2", "token-2"]


def test_the_rules_tell_the_owner_of_a_dormant_buyer_and_the_managers_of_a_stalled_deal(
    settings: Settings, receiver: Receiver
) -> None:
    settings = replace(settings, notify_webhook=f"{receiver.url}/hook")
    clock = FakeClock()
    app = build(settings, clock=clock)
    try:
        project = unique("proj")
        consultant, _, manager = team(app, project)
        app.policies.set_policy(
            ctx(Actor(manager, "manager")),
            project,
            {
                "protection": "P20D",
                "protection_max": "P30D",
                "inactivity_release": "P25D",
                "dormant_after": "P3D",
                "negotiation_escalation": "P2D",
            },
        )
        register_visit(app, project, "13855550201", consultant)  # nobody calls this one
        buying = uuid.UUID(register_visit(app, project, "13855550202", consultant)["client_id"])
        row = {
            "building": "A",
            "number": "0201",
            "rooms": 3,
            "area": "95.5",
            "floor": 2,
            "orientation": "south",
            "list_price_fen": 300_000_000,
        }
        unit = app.units.import_units(ctx(), project, [("line 2", row)]).value.units[0].unit_id
        seller = ctx(Actor(consultant, "consultant"))
        deal_id = app.deals.open_deal(seller, buying, unit).value.deal.id
        app.deals.pay_deposit(
            seller,
            deal_id,
            amount=2_000_000,
            method="cash",
            signing_deadline=clock.now + timedelta(days=30),
        )
        clock.advance(days=3, minutes=1)
        fire(app)
        fire(app)  # the rules fire once however often the processor runs
        assert app.notifier is not None
        app.notifier.run_once()
        rows = outbox(app, project)
    finally:
        app.close()
    raised = Counter((r["kind"], r["recipient"]) for r in rows if r["status"] == "sent")
    assert raised[("dormant_buyer", consultant)] == 1
    assert raised[("negotiation_escalated", manager)] == 1
    told = {p.content.split("**")[1]: p.content for p in receiver.about(project)}
    assert "138****0201" in told["客户长期未跟进，已转为待激活"]
    stalled = told["谈判停滞未签约，请经理介入"]
    assert "138****0202" in stalled and "已交定金" in stalled and consultant in stalled


def test_two_senders_racing_over_the_same_notifications_post_each_once(
    settings: Settings, receiver: Receiver
) -> None:
    settings = replace(settings, notify_webhook=f"{receiver.url}/hook")
    clock = FakeClock()
    app = build(settings, clock=clock)
    other = build(settings, clock=clock)  # a second worker process on the same stores
    try:
        project = unique("proj")
        consultant = register_consultant(app, project)
        for i in range(6):
            register_visit(app, project, f"1385555030{i}", consultant)
        app.follower.catch_up()
        clock.advance(hours=24, minutes=1)  # twelve notices due: due soon and overdue
        senders = [app.notifier, other.notifier, app.notifier, other.notifier]
        barrier = threading.Barrier(len(senders))

        def race(sender: Any) -> int:
            barrier.wait()
            return int(sender.run_once())

        with ThreadPoolExecutor(len(senders)) as pool:
            attempts = sum(pool.map(race, senders))
        rows = outbox(app, project)
    finally:
        other.close()
        app.close()
    posted = Counter(p.notification_id for p in receiver.about(project))
    assert len(posted) == 12 and set(posted.values()) == {1}
    assert attempts == 12
    assert Counter(r["status"] for r in rows if not r["cancelled"]) == Counter(
        {"sent": 12, None: 6}  # protection ending: not yet due, never looked at
    )
