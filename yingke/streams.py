"""The first events of many streams in a few queries: the adapter behind the client
import's ``heads`` port, so checking 50,000 buyers (new ones, or a re-run where every
buyer exists) is a few hundred queries, not 100,000 (ADR 0047)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.application import Application, project_aggregate

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
