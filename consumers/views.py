"""`yingke consume views`: the BI views, built from Kafka with the projection code itself.

Each public message becomes the domain event again (consumers.contract.to_domain_event:
the personal fields the views never read come back empty) and goes through the same
View classes and the same ``Rows`` as the direct follower. A polled batch is applied
in one transaction together with each view's position in ``projection_tracking``, the
very table the follower keeps: a message at or below a view's position is a duplicate
(a relay re-send, a redelivery after a crash) and changes nothing. Then the offset is
committed; a crash before that re-reads the batch and skips what was applied.

Every view is built here: the deal views too, since deal, unit and commission-policy
events are public (contract v1). The fields the contract withholds (names, contract
numbers, free-text reasons) are fields no view reads.

Positions are a total order, and views need it: some join streams (a masked report
files in its pool's stream and is confirmed in the buyer's). The topic therefore has
one partition (ADR 0010); this consumer refuses to start on more. It scales by running
groups for different sets of views (``--views``), each with standbys.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from consumers import contract
from consumers.broker import (
    POLL_SECONDS,
    Message,
    Stopper,
    ensure_topics,
    group_consumer,
    run_group,
)
from projections.runtime import Rows, View, ViewDB, lock_positions, set_position

if TYPE_CHECKING:
    from yingke.settings import Settings

log = logging.getLogger("yingke.consume.views")


def handle(
    message: Message,
    views: Sequence[View],
    rows: dict[str, Rows],
    positions: dict[str, int],
    validate: bool = True,
) -> int:
    """Apply one message to every view it is new to, in memory; 1 if any was, else 0."""
    payload = contract.decode(message.value)
    if validate:
        contract.check(payload)
    position = int(payload["position"])
    fresh = [v for v in views if position > positions[v.name]]
    if not fresh:
        return 0
    event = contract.to_domain_event(payload)
    for view in fresh:
        if view.handles(event):
            view.apply(rows[view.name], event, position)
        positions[view.name] = position
    return 1


@dataclass
class ViewsConsumer:
    db: ViewDB
    views: Sequence[View]
    validate: bool = True
    applied: int = 0
    duplicates: int = 0

    def apply(self, messages: Sequence[Message]) -> int:
        """One transaction: the batch's row changes and the views' new positions."""
        names = [v.name for v in self.views]
        with self.db.transaction() as tx:
            positions = lock_positions(tx, self.db.dialect, names)
            before = dict(positions)
            rows = {v.name: Rows(v.tables, self.db.dialect, tx) for v in self.views}
            applied = sum(handle(m, self.views, rows, positions, self.validate) for m in messages)
            for view in self.views:
                rows[view.name].flush()
                if positions[view.name] > before[view.name]:
                    set_position(tx, view.name, positions[view.name])
        self.applied += applied
        self.duplicates += len(messages) - applied
        return applied

    def positions(self) -> dict[str, int]:
        names = {v.name for v in self.views}
        rows = self.db.query("SELECT view, position FROM projection_tracking")
        return {str(n): int(p) for n, p in rows if n in names}


class TopicShapeError(RuntimeError):
    pass


def check_single_partition(consumer: Any, topic: str) -> None:
    partitions = consumer.partitions_for_topic(topic) or set()
    if len(partitions) > 1:
        raise TopicShapeError(
            f"{topic} has {len(partitions)} partitions; the views need the total order of "
            "one partition (ADR 0010)"
        )


def needs_withheld_events(view: View) -> bool:
    """True when the view handles an event type the contract does not publish: built
    from Kafka it would silently miss those events."""
    return any(view.handles(object.__new__(cls)) for cls in contract.withheld_classes())


def select_views(all_views: Sequence[View], names: str | None) -> list[View]:
    """Every view (or the ``--views`` named), each refused if it needs an unpublished
    event: since deals are public (contract v1) every view builds from Kafka."""
    chosen = _named(all_views, names) if names else list(all_views)
    blind = [v.name for v in chosen if needs_withheld_events(v)]
    if blind:
        from yingke.settings import ConfigurationError

        raise ConfigurationError(
            f"views {blind} read events the contract does not publish; publish them in "
            "consumers/contract.py or run these views with `yingke projections`"
        )
    return chosen


def _named(all_views: Sequence[View], names: str) -> list[View]:
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {v.name: v for v in all_views}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        from yingke.settings import ConfigurationError

        raise ConfigurationError(f"unknown views {unknown}; one of: {', '.join(known)}")
    return [known[n] for n in wanted]


def main(
    view_names: str | None = None,
    stopper: Stopper | None = None,
    settings: Settings | None = None,
) -> int:
    from yingke import metrics
    from yingke.bootstrap import all_views, view_db
    from yingke.loop_status import LoopStatus
    from yingke.settings import load_settings

    settings = settings or load_settings()
    observed = metrics.Metrics()
    stopper = stopper or Stopper().install()
    loop = "consume-views"  # its name in the status and the metrics
    views = select_views(all_views(), view_names)
    ensure_topics(settings.kafka_bootstrap, [settings.kafka_topic])
    db = view_db(settings)
    status = LoopStatus(db)
    observed.report_to(status)
    # One group per set of views: groups for different sets scale out side by side.
    group = "yingke-views" + (f"-{'-'.join(sorted(v.name for v in views))}" if view_names else "")
    consumer = group_consumer(
        settings.kafka_bootstrap, settings.kafka_topic, group, settings.kafka_fast_join
    )
    print(f"yingke consume views: {settings.kafka_topic} → {len(views)} views", flush=True)
    metrics.serve(observed, settings, "consume views")
    try:
        check_single_partition(consumer, settings.kafka_topic)
        run_group(
            consumer,
            observed.counted("views", ViewsConsumer(db, views).apply, POLL_SECONDS),
            stopper,
            max_records=settings.consumer_batch_size,
            heartbeat_file=settings.heartbeat_file,
            on_error=lambda error: observed.failed(loop, error, interval=POLL_SECONDS),
            on_empty=lambda: observed.succeeded(loop, interval=POLL_SECONDS),
        )
    finally:
        consumer.close(autocommit=False)
        status.forget()
        db.close()
    return 0
