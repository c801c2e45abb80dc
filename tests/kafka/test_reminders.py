"""Reminders reach a real local webhook once each, with retries, backoff and dead letters."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

import pytest

from consumers.broker import KafkaPublisher, Stopper, ensure_topics, group_consumer, run_group
from consumers.relay import PostgresRelayState, Relay
from consumers.reminders import HttpWebhook, Reminders, Sender, Timer, migrate
from tests.kafka.conftest import ContainerFactory, read_topic
from tests.support import FakeClock, file_report, register_consultant, register_visit, unique
from yingke.bootstrap import Container, conninfo
from yingke.settings import Settings

pytestmark = pytest.mark.postgres


@dataclass
class Receiver:
    """A webhook that records every POST and answers what ``answer`` says."""

    answer: Callable[[str, int], int] = lambda nid, attempt: 200
    now: Callable[[], float] = time.monotonic  # what each POST is stamped with
    posts: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    delivered: Counter[str] = field(default_factory=Counter)
    url: str = ""

    def attempts(self, nid: str) -> list[float]:
        return [at for at, n, _ in self.posts if n == nid]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            nid = self.headers["X-Yingke-Notification-Id"]
            with lock:
                state.posts.append((state.now(), nid, body))
                status = state.answer(nid, len(state.attempts(nid)))
                if status == 200:
                    state.delivered[nid] += 1
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"errcode":0,"errmsg":"ok"}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/webhook/send?key=test"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


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


def sender(
    settings: Settings, db: Any, url: str, clock: Callable[[], datetime], **kw: Any
) -> Sender:
    return Sender(
        db,
        HttpWebhook(url, timeout=10),
        KafkaPublisher(settings.kafka_bootstrap),
        settings.reminder_dead_letter_topic,
        clock,
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
            Reminders(db).apply,
            Stopper(),
            idle=idle,
            until=lambda: runs[0] >= 3 or time.monotonic() > deadline,
        )
    finally:
        consumer.close(autocommit=False)
    assert runs[0] >= 3, "the reminders consumer did not drain its partition within 120 s"


def test_due_follow_ups_and_ending_protection_reach_the_webhook_once_across_restarts(
    settings: Settings, containers: ContainerFactory, receiver: Receiver
) -> None:
    container = containers(FakeClock())
    clock: FakeClock = container.clock  # type: ignore[assignment]
    project = owned_buyers(container, clock, ["13822220001", "13822220002"])
    migrate(container.views)
    relay_all(settings, container)
    group = f"reminders-{uuid.uuid4().hex[:6]}"
    # past every follow-up deadline, 2 days before the end of the 30-day protection
    clock_28_days_on = FakeClock(clock.now + timedelta(days=28))

    db, url = container.views, receiver.url
    run_reminders(settings, db, group, sender(settings, db, url, clock_28_days_on))
    assert sum(receiver.delivered.values()) == 8
    run_reminders(settings, db, group, sender(settings, db, url, clock_28_days_on))  # restart
    # A brand-new group re-reads everything from the start: still nothing twice.
    run_reminders(settings, db, group + "-again", sender(settings, db, url, clock_28_days_on))

    kinds: Counter[str] = Counter()
    for _, _, body in receiver.posts:
        content = body["markdown"]["content"]
        assert body["msgtype"] == "markdown"
        assert "138****000" in content and "1382222000" not in content
        assert project in content
        kinds[content.split("**")[1]] += 1
    assert sorted(receiver.delivered.values()) == [1] * 8  # 2 buyers × 4 kinds, once each
    assert sorted(kinds.values()) == [2, 2, 2, 2]  # four kinds, one per buyer each
    ledger = dict(container.views.query("SELECT notification_id, outcome FROM reminders_sent"))
    assert {ledger[nid] for nid in receiver.delivered} == {"delivered"}


def test_a_failing_webhook_is_retried_with_backoff_then_dead_lettered(
    settings: Settings, containers: ContainerFactory, receiver: Receiver
) -> None:
    container = containers(FakeClock())
    clock: FakeClock = container.clock  # type: ignore[assignment]
    settings = replace(settings, reminder_dead_letter_topic=f"{settings.kafka_topic}.dead")
    owned_buyers(container, clock, ["13833330001"])
    migrate(container.views)
    relay_all(settings, container)
    ensure_topics(settings.kafka_bootstrap, [settings.reminder_dead_letter_topic])
    reminders = Reminders(container.views)
    reminders.apply(read_topic(settings.kafka_bootstrap, settings.kafka_topic))  # handle alone
    flaky: set[str] = set()

    def answer(nid: str, attempt: int) -> int:
        if nid not in flaky and len(flaky) < 1:
            flaky.add(nid)  # the first notification recovers on its third attempt
        if nid in flaky:
            return 500 if attempt < 3 else 200
        return 503  # every other one keeps failing

    receiver.answer = answer
    # The sender's own clock decides when a retry is due, so the test moves that clock
    # and asserts the schedule itself, whatever the machine's speed.
    now = FakeClock(clock.now + timedelta(days=28))
    receiver.now = lambda: now().timestamp()
    backoff = 30.0
    send = sender(settings, container.views, receiver.url, now, max_attempts=3, backoff=backoff)
    just = timedelta(milliseconds=1)

    assert send.run_once() == 4  # four reminders due: each tried once, each failed
    for wait in (backoff, 2 * backoff):  # doubling backoff
        now.advance(seconds=wait - just.total_seconds())
        assert send.run_once() == 0, f"retried before its {wait} s backoff"
        now.advance(seconds=just.total_seconds())
        assert send.run_once() == 4, f"not retried once its {wait} s backoff passed"
    now.advance(days=7)
    assert send.run_once() == 0  # nothing is tried again once delivered or dead

    (recovered,) = flaky
    assert receiver.delivered == Counter({recovered: 1})
    assert send.dead_lettered == 3
    for nid in {n for _, n, _ in receiver.posts}:
        at = receiver.attempts(nid)
        assert [b - a for a, b in pairwise(at)] == [backoff, 2 * backoff]
    letters = [
        json.loads(r.value)
        for r in read_topic(settings.kafka_bootstrap, settings.reminder_dead_letter_topic)
    ]
    assert sorted(letter["attempts"] for letter in letters) == [3, 3, 3]
    assert {letter["notification_id"] for letter in letters}.isdisjoint({recovered})
    assert all("503" in letter["last_error"] for letter in letters)
    assert len(receiver.posts) == 12  # 4 reminders × 3 attempts, never a fourth
