"""`yingke consume reminders`: the notification outbox from Kafka, delivered to people.

The scaled topology's notification worker (ADR 0052, superseding the group-only
reminders of ADR 0010's consumer):
1. Public messages become domain events again and go through the very reducer that
   builds the outbox inside ``yingke serve`` (projections.notification_outbox), in one
   transaction with its position in ``projection_tracking``; a redelivered or re-sent
   event is at or below that position and changes nothing. Another follower of the same
   view (``yingke projections``) takes turns on the same position, never applies twice.
2. Whenever the consumer has drained its partition (so a backlog cannot fire a
   reminder a later event already moved), at most every YINGKE_REMINDER_TICK seconds,
   the sender (yingke.notify) tries what is due; what fails its last attempt also goes
   to the dead-letter topic.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from consumers.broker import (
    POLL_SECONDS,
    Publisher,
    Record,
    Stopper,
    ensure_topics,
    group_consumer,
    run_group,
)
from consumers.views import ViewsConsumer, check_single_partition
from projections.notification_outbox import NotificationOutbox

if TYPE_CHECKING:
    from yingke.notify import Sender
    from yingke.settings import Settings

log = logging.getLogger("yingke.consume.reminders")

GROUP = "yingke-reminders"


def outbox_consumer(db: Any) -> ViewsConsumer:
    return ViewsConsumer(db, [NotificationOutbox()])


@dataclass
class DeadLetters:
    """Notifications given up on, published for whoever watches them."""

    publisher: Publisher
    topic: str
    clock: Callable[[], Any]

    def __call__(self, row: dict[str, Any], error: str, attempts: int) -> None:
        letter = {
            "notification_id": row["notification_id"],
            "kind": row["kind"],
            "client_id": row["client_id"],
            "recipient_id": row["recipient_id"],
            "attempts": attempts,
            "last_error": error,
            "failed_at": self.clock().isoformat(),
        }
        self.publisher.publish(
            self.topic,
            [
                Record(
                    key=(row["client_id"] or "").encode(),
                    value=json.dumps(letter, ensure_ascii=False).encode(),
                    headers=[("notification_id", row["notification_id"].encode())],
                )
            ],
        )


@dataclass
class Timer:
    """Runs the sender at most every ``interval`` seconds, only once the consumer drained."""

    sender: Sender
    interval: float
    last: float = 0.0
    monotonic: Callable[[], float] = time.monotonic  # injected by tests

    def __call__(self, drained: bool) -> None:
        now = self.monotonic()
        if drained and now - self.last >= self.interval:
            self.last = now
            self.sender.run_once()


def main(stopper: Stopper | None = None, settings: Settings | None = None) -> int:
    from consumers.broker import KafkaPublisher
    from yingke import metrics
    from yingke.bootstrap import build
    from yingke.settings import load_settings

    settings = settings or load_settings()
    stopper = stopper or Stopper().install()
    loop = "consume-reminders"  # its name in the status and the metrics
    topics = [settings.kafka_topic, settings.reminder_dead_letter_topic]
    ensure_topics(settings.kafka_bootstrap, topics)
    # The container gives the principals' streams (contacts), the views and the sender.
    container = build(settings)
    observed = container.metrics
    sender = container.notifier
    assert sender is not None
    publisher = KafkaPublisher(settings.kafka_bootstrap)
    sender.on_failed = DeadLetters(publisher, settings.reminder_dead_letter_topic, container.clock)
    if not (settings.notify_webhook or settings.wecom_corp_id):
        log.warning(
            "neither YINGKE_NOTIFY_WEBHOOK nor WeCom credentials are set: only people with "
            "their own notify_webhook are reached, the rest is logged"
        )
    consumer = group_consumer(
        settings.kafka_bootstrap, settings.kafka_topic, GROUP, settings.kafka_fast_join
    )
    print(f"yingke consume reminders: {settings.kafka_topic} → notifications", flush=True)
    metrics.serve(observed, settings, "consume reminders")
    try:
        check_single_partition(consumer, settings.kafka_topic)
        run_group(
            consumer,
            observed.counted("reminders", outbox_consumer(container.views).apply, POLL_SECONDS),
            stopper,
            max_records=settings.consumer_batch_size,
            idle=Timer(sender, settings.reminder_tick),
            heartbeat_file=settings.heartbeat_file,
            on_error=lambda error: observed.failed(loop, error, interval=POLL_SECONDS),
            on_empty=lambda: observed.succeeded(loop, interval=POLL_SECONDS),
        )
    finally:
        consumer.close(autocommit=False)
        publisher.close()
        container.close()
    return 0
