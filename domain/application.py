"""The one event store: an eventsourcing Application holding every stream and the
notification log. The capability services (``domain.services``) use it through one
``UnitOfWork``; nothing inherits from it."""

from __future__ import annotations

from eventsourcing.application import Application


class EventStore(Application):  # type: ignore[type-arg]
    # The name prefixes the store's settings and tables: it stays "Yingke".
    name = "Yingke"
