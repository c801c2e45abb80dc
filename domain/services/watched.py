"""Read-only copies of a few small, hot streams, kept current from the notification log.

Every request authenticates (a principal's stream) and every report reads its project's
policy: loading those streams each time was a fifth of a report's time. Here a loaded
aggregate is kept in memory and dropped as soon as the log shows a new event of a
watched type for its stream. Before answering, a reader catches up with the log: one
cheap query for the head, and only when the head moved, one for the watched events
since. A reader waits for a catch-up that began after it arrived, so a key revoked by
any process fails on the next request, as when every request loaded the stream; under
load, one catch-up serves every reader that arrived before it began; one query is out at
a time, and the lock is never held across it, so a reader already caught up reads its
copy while another reader's query is out (it used to queue behind it). Inside an HTTP
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
        # Guards the copies and the bookkeeping below; held only for dictionary work,
        # never across a query: a reader whose catch-up is done reads its copy while
        # another reader's catch-up is in flight.
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._in_flight = False  # a catch-up query is out (at most one at a time)
        self._copies: dict[uuid.UUID, Aggregate | None] = {}
        # The position of the newest watched event seen per stream: a copy loaded before
        # it must not be kept.
        self._changed: dict[uuid.UUID, int] = {}
        self._position = self._recorder.max_notification_id() or 0
        self._caught_up_at = 0.0
        self.hits = 0
        self.loads = 0
        self.catch_ups = 0  # queries sent (one per catch-up, more if it pages)

    def catch_up(self) -> int:
        """Drop copies the log has moved past; returns the position caught up to."""
        arrived = READER_ARRIVED.get() or time.monotonic()
        with self._lock:
            return self._catch_up_locked(arrived)

    def _catch_up_locked(self, arrived: float) -> int:
        """With ``_lock`` held (it is released while the query is out). One in flight
        that began before this reader arrived may have read the log before a change the
        reader is owed: the reader waits for it to end, then for one that begins after."""
        while self._caught_up_at <= arrived:
            if self._in_flight:
                self._done.wait()
                continue
            self._in_flight = True
            began = time.monotonic()
            position = self._position
            self._lock.release()
            try:
                position, changed = self._read_log(position)
            finally:
                self._lock.acquire()
                self._in_flight = False
                self._done.notify_all()
            for at, stream in changed:
                self._copies.pop(stream, None)
                self._changed[stream] = at
            self._position = max(self._position, position)
            self._caught_up_at = max(self._caught_up_at, began)
        return self._position

    def _read_log(self, position: int) -> tuple[int, list[tuple[int, uuid.UUID]]]:
        """The head, and each watched event (position, stream) after ``position``."""
        changed: list[tuple[int, uuid.UUID]] = []
        both = getattr(self._recorder, "watched_since", None)
        if both is not None:
            # PostgreSQL: the head and the watched events since, in one round trip.
            while True:
                self.catch_ups += 1
                head, found = both(position, self._topics, PAGE)
                changed.extend(found)
                if len(found) < PAGE:
                    return max(position, head), changed
                position = found[-1][0]
        self.catch_ups += 1
        head = self._recorder.max_notification_id() or 0
        while head > position:
            notes = self._recorder.select_notifications(
                start=position,
                limit=PAGE,
                stop=head,
                topics=self._topics,
                inclusive_of_start=False,
            )
            changed.extend((note.id, uuid.UUID(str(note.originator_id))) for note in notes)
            position = notes[-1].id if len(notes) == PAGE else head
        return position, changed

    def find(self, cls: type[A], stream: uuid.UUID) -> A | None:
        """The stream's aggregate as of now (a shared copy: read it, never change it)."""
        arrived = READER_ARRIVED.get() or time.monotonic()
        with self._lock:
            position = self._catch_up_locked(arrived)
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
