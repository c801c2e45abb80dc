"""The first events of many streams in a few queries: the adapter behind the client
import's ``heads`` port, so checking 50,000 buyers (new ones, or a re-run where every
buyer exists) is a few hundred queries, not 100,000 (ADR 0047)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.application import Application, project_aggregate
from eventsourcing.utils import get_topic

Heads = Callable[[Sequence[uuid.UUID], int], dict[uuid.UUID, Any]]


def stream_heads(app: Application) -> Heads | None:  # type: ignore[type-arg]
    """Aggregates as of their version ``upto`` for those of ``ids`` that exist, read and
    chain-checked like ``repository.get(id, version=upto)``; None if the recorder cannot
    read many streams at once (callers then read stream by stream)."""
    select = getattr(app.recorder, "select_heads", None)
    if select is None:
        return None

    def heads(ids: Sequence[uuid.UUID], upto: int) -> dict[uuid.UUID, Any]:
        found: dict[uuid.UUID, Any] = {}
        for stream, stored in select(ids, upto).items():
            aggregate = project_aggregate(None, [app.mapper.to_domain_event(s) for s in stored])
            if aggregate is not None:
                found[stream] = aggregate
        return found

    return heads


Marked = Callable[[Sequence[uuid.UUID]], set[uuid.UUID]]


def streams_with(app: Application, event_class: type) -> Marked | None:  # type: ignore[type-arg]
    """Which of ``ids`` hold an event of ``event_class`` (the import asks which buyers
    were erased) in one query per 1,000 ids; None if the recorder cannot tell."""
    select = getattr(app.recorder, "select_streams_with", None)
    if select is None:
        return None
    topic = get_topic(event_class)

    def marked(ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return set(select(ids, topic))

    return marked
