"""Read-only copies of a few small, hot streams, kept current from the notification log.

Every request authenticates (a principal's stream) and every report reads its project's
policy: loading those streams each time was a fifth of a report's time. Here a loaded
aggregate is kept in memory and dropped as soon as the log shows a new event of a
watched type for its stream. Before answering, a reader catches up with the log: one
cheap query for the head, and only when the head moved, one for the watched events
since. A reader waits for a catch-up that began after it arrived, so a key revoked by
any process fails on the next request, as when every request loaded the stream; under
load, one catch-up serves every reader that arrived before it began. Inside an HTTP
request a reader arrived when the request did (``READER_ARRIVED``), so authentication's
catch-up also serves the request's policy reads, until the request writes.

The copies are shared between threads: callers only read them. Commands that change one
of these streams load it afresh through the unit of work, as before.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any, TypeVar

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from domain.services.uow import READER_ARRIVED, UnitOfWork

A = TypeVar("A", bound=Aggregate)
PAGE = 500


def event_topics(*classes: type[Aggregate]) -> list[str]:
    """Every event topic the aggregates of ``classes`` can store."""
    topics: set[str] = set()
    for cls in classes:
        for name in dir(cls):
            attr = getattr(cls, name)
            if isinstance(attr, type) and issubclass(attr, Aggregate.Event):
                topics.add(get_topic(attr))
    return sorted(topics)


class WatchedStreams:
    def __init__(self, uow: UnitOfWork, classes: Iterable[type[Aggregate]]) -> None:
        self._uow = uow
        self._recorder: Any = uow.store.recorder
        self._topics = event_topics(*classes)
        self._lock = threading.Lock()
        self._copies: dict[uuid.UUID, Aggregate | None] = {}
        # The position of the newest watched event seen per stream: a copy loaded before
        # it must not be kept.
        self._changed: dict[uuid.UUID, int] = {}
        self._position = self._recorder.max_notification_id() or 0
        self._caught_up_at = 0.0
        self.hits = 0
        self.loads = 0

    def catch_up(self) -> int:
        """Drop copies the log has moved past; returns the position caught up to."""
        arrived = READER_ARRIVED.get() or time.monotonic()
        with self._lock:
            if self._caught_up_at > arrived:
                return self._position
            began = time.monotonic()
            both = getattr(self._recorder, "watched_since", None)
            if both is not None:
                # PostgreSQL: the head and the watched events since, in one round trip.
                while True:
                    head, found = both(self._position, self._topics, PAGE)
                    for position, stream in found:
                        self._copies.pop(stream, None)
                        self._changed[stream] = position
                    if len(found) < PAGE:
                        self._position = max(self._position, head)
                        break
                    self._position = found[-1][0]
                self._caught_up_at = began
                return self._position
            head = self._recorder.max_notification_id() or 0
            while head > self._position:
                notes = self._recorder.select_notifications(
                    start=self._position,
                    limit=PAGE,
                    stop=head,
                    topics=self._topics,
                    inclusive_of_start=False,
                )
                for note in notes:
                    stream = uuid.UUID(str(note.originator_id))
                    self._copies.pop(stream, None)
                    self._changed[stream] = note.id
                self._position = notes[-1].id if len(notes) == PAGE else head
            self._caught_up_at = began
            return self._position

    def find(self, cls: type[A], stream: uuid.UUID) -> A | None:
        """The stream's aggregate as of now (a shared copy: read it, never change it)."""
        position = self.catch_up()
        with self._lock:
            if stream in self._copies:
                self.hits += 1
                return _as(cls, self._copies[stream])
        loaded = self._uow.find(cls, stream)
        with self._lock:
            self.loads += 1
            # A change seen after this load began may be missing from it: keep nothing.
            if self._changed.get(stream, 0) <= position:
                self._copies[stream] = loaded
        return loaded


def _as(cls: type[A], found: Aggregate | None) -> A | None:
    return found if isinstance(found, cls) else None
