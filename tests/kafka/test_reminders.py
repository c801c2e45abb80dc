"""`consume reminders`: the outbox built from Kafka, delivered to a real local webhook once
each, with retries on the sender's clock and dead letters."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from consumers.broker import KafkaPublisher, Stopper, ensure_topics, group_consumer, run_group
from consumers.relay import PostgresRelayState, Relay
from consumers.reminders import DeadLetters, Timer, outbox_consumer
from tests.kafka.conftest import ContainerFactory, read_topic
from tests.receivers import Post, Receiver, serving
from tests.support import FakeClock, file_report, register_consultant, register_visit, unique
from yingke.bootstrap import Container, conninfo
from yingke.notify import PrincipalDirectory, Sender
from yingke.settings import Settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as state:
        yield state


def owned_buyers(app: Container, clock: FakeClock, phones: list[str]) -> str:
    """Buyers reported and visited: owned, protection running, first follow-up due."""
    project = unique("proj")
    consultant = register_consultant(app, project)
    for phone in phones:
        file_report(app, project, "pa", phone)
        clock.advance(hours=1)
        register_visit(app, project, phone, consultant, partner_id="pa")
    return project


def relay_all(settings: Settings, app: Container) -> None:
    relay = Relay(
        app.store,
        PostgresRelayState(conninfo(settings), settings.kafka_topic),
        KafkaPublisher(settings.kafka_bootstrap),
        settings.kafka_topic,
    )
    relay.catch_up()
    relay.state.release()


def sender(container: Container, url: str, clock: Callable[[], datetime], **kw: Any) -> Sender:
    return Sender(
        container.views,
        PrincipalDirectory(container.principals.principal),
        clock,
        group_webhook=url,
        **kw,
    )


def run_reminders(settings: Settings, db: Any, group: str, send: Sender) -> None:
    """One reminders process: the consumer group and its timer, until it has drained its
    partition and the timer has run twice since (failing if that takes over 120 s)."""
    consumer = group_consumer(settings.kafka_bootstrap, settings.kafka_topic, group, fast_join=True)
    runs = [0]
    timer = Timer(send, 0.05)

    def idle(drained: bool) -> None:
        if consumer.assignment():
            timer(drained)
            runs[0] += drained

    deadline = time.monotonic() + 120
    try:
        run_group(
            consumer,
            outbox_consumer(db).apply,
            Stopper(),
            idle=idle,
            until=lambda: runs[0] >= 3 or time.monotonic() > deadline,
        )
    finally:
        consumer.close(autocommit=False)
    assert runs[0] >= 3, "the reminders consumer did not drain its partition within 120 s"


def test_due_and_overdue_follow_ups_reach_the_webhook_once_across_restarts(
    settings: Settings, containers: ContainerFactory, receiver: Receiver
) -> None:
    container = containers(FakeClock())
    clock: FakeClock = container.clock  # type: ignore[assignment]
    project = owned_buyers(container, clock, ["13822220001", "13822220002"])
    relay_all(settings, container)
    group = f"reminders-{uuid.uuid4().hex[:6]}"
    # just past the first follow-up's deadline (24 h after each visit)
    a_day_on = FakeClock(clock.now + timedelta(hours=24, minutes=1))

    db, url = container.views, f"{receiver.url}/cgi-bin/webhook/send?key=test"
    run_reminders(settings, db, group, sender(container, url, a_day_on))
    assert len(receiver.about(project)) == 4
    run_reminders(settings, db, group, sender(container, url, a_day_on))  # restart
    # A brand-new group re-reads everything from the start: still nothing twice.
    run_reminders(settings, db, group + "-again", sender(container, url, a_day_on))

    kinds: Counter[str] = Counter()
    told = receiver.about(project)
    for post in told:
        assert post.body["msgtype"] == "markdown"
        assert "138****000" in post.content and "1382222000" not in post.content
        kinds[post.content.split("**")[1]] += 1
    assert [receiver.delivered[p.notification_id] for p in told] == [1] * 4
    assert kinds == Counter({"跟进即将到期": 2, "跟进已逾期": 2})  # one of each per buyer
    ids = [p.notification_id for p in told]
    marks = ", ".join(["%s"] * len(ids))
    ledger = container.views.query(
        f"SELECT status, attempts FROM notification_delivery WHERE notification_id IN ({marks})",
        ids,
    )
    assert sorted(ledger) == [("sent", 1)] * 4


def test_a_failing_webhook_is_retried_with_backoff_then_dead_lettered(
    settings: Settings, containers: ContainerFactory, receiver: Receiver
) -> None:
    container = containers(FakeClock())
    clock: FakeClock = container.clock  # type: ignore[assignment]
    settings = replace(settings, reminder_dead_letter_topic=f"{settings.kafka_topic}.dead")
    project = owned_buyers(container, clock, ["13833330001", "13833330002"])
    relay_all(settings, container)
    ensure_topics(settings.kafka_bootstrap, [settings.reminder_dead_letter_topic])
    outbox_consumer(container.views).apply(
        read_topic(settings.kafka_bootstrap, settings.kafka_topic)
    )
    flaky: set[str] = set()

    def answer(post: Post, attempt: int) -> tuple[int, dict[str, Any]]:
        if project not in post.content:
            return 200, {"errcode": 0}  # another test's notification
        if post.notification_id not in flaky and not flaky:
            flaky.add(post.notification_id)  # the first one recovers on its third attempt
        if post.notification_id in flaky:
            return (500, {}) if attempt < 3 else (200, {"errcode": 0})
        return 503, {}  # every other one keeps failing

    receiver.answer = answer
    # The sender's own clock decides when a retry is due, so the test moves that clock
    # and asserts the schedule itself, whatever the machine's speed.
    now = FakeClock(clock.now + timedelta(hours=24, minutes=1))
    receiver.now = lambda: now().timestamp()
    backoff = 30.0
    dead = DeadLetters(
        KafkaPublisher(settings.kafka_bootstrap), settings.reminder_dead_letter_topic, now
    )
    send = sender(
        container, f"{receiver.url}/hook", now, max_attempts=3, backoff=backoff, on_failed=dead
    )
    just = timedelta(milliseconds=1)

    def mine() -> list[Post]:
        return receiver.about(project)

    send.run_once()
    assert len(mine()) == 4  # due and overdue for two buyers: each tried once, each failed
    for wait in (backoff, 2 * backoff):  # doubling backoff
        now.advance(seconds=wait - just.total_seconds())
        before = len(mine())
        send.run_once()
        assert len(mine()) == before, f"retried before its {wait} s backoff"
        now.advance(seconds=just.total_seconds())
        send.run_once()
        assert len(mine()) == before + 4, f"not retried once its {wait} s backoff passed"
    now.advance(hours=3)
    send.run_once()
    assert len(mine()) == 12  # nothing is tried again once delivered or dead

    (recovered,) = flaky
    assert {
        n: c for n, c in receiver.delivered.items() if n in {p.notification_id for p in mine()}
    } == {recovered: 1}
    assert send.failed == 3
    for nid in {p.notification_id for p in mine()}:
        at = receiver.attempts(nid)
        assert [b - a for a, b in pairwise(at)] == [backoff, 2 * backoff]
    letters = [
        json.loads(r.value)
        for r in read_topic(settings.kafka_bootstrap, settings.reminder_dead_letter_topic)
    ]
    assert sorted(letter["attempts"] for letter in letters) == [3, 3, 3]
    assert {letter["notification_id"] for letter in letters}.isdisjoint({recovered})
    assert all("503" in letter["last_error"] for letter in letters)
