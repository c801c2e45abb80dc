"""The one event store: an eventsourcing Application holding every stream and the
notification log. The capability services (``domain.services``) use it through one
``UnitOfWork``; nothing inherits from it."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import Recording


class EventStore(Application):  # type: ignore[type-arg]
    # The name prefixes the store's settings and tables: it stays "Yingke".
    name = "Yingke"

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[Any]]:
        """The library's ``save`` for the common case: aggregates only, no library
        snapshots, no aggregate cache. Its ``collect_events`` asks of every object
        ``isinstance`` against two runtime ``Protocol`` classes (~13 µs an aggregate on a
        quiet core, more under GIL contention; issue 15); an aggregate's class says the
        same here.
        Anything else (domain events passed alone, keyword arguments, a store
        configured with snapshotting or a cache) goes the library's way unchanged."""
        if (
            kwargs
            or self.snapshots is not None
            or self.repository.cache is not None
            or not all(obj is None or isinstance(obj, BaseAggregate) for obj in objs)
        ):
            return super().save(*objs, **kwargs)
        processing = ProcessingEvent[Any]()
        events = processing.events
        aggregates = processing.aggregates
        for obj in objs:
            if obj is not None:
                events.extend(obj.collect_events())
                aggregates[obj.id] = obj
        recordings = self._record(processing)
        # The library's deprecated ``notify(events)`` hook is not called: nothing here
        # implements it.
        self._notify(recordings)
        return recordings
