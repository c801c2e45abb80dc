"""How far behind the event log each view is: JSON for people, Prometheus for machines."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from api.authorization import SEES_LOOP_DETAIL
from api.deps import CallerDep, get_container
from api.schemas import ViewsStatus
from yingke import loop_status
from yingke.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger("yingke.api")

router = APIRouter(tags=["views"])


@router.get("/v1/views/status", response_model=ViewsStatus)
def views_status(request: Request, caller: CallerDep) -> dict[str, Any]:
    """Per view: the last position applied, the head of the log, and the lag.

    ``loops`` lists every worker loop of every process that shares the views database
    (this one, the supervisor of ``serve --workers N``, ``yingke projections``,
    ``deadlines``, ``relay``, ``consume``), from the ``yingke_loop_status`` table: when
    each last succeeded, the error of its last step if it failed, and ``stale`` when its
    process stopped reporting.
    """
    container = get_container(request)
    head = container.position()
    lag = container.follower.lag()
    return {
        "head": head,
        "views": [
            {"view": name, "position": pos, "lag": behind} for name, (pos, behind) in lag.items()
        ],
        "deadlines_fired": dict(container.deadlines.fired),
        "loops": [_shown(row, caller.role in SEES_LOOP_DETAIL) for row in _loops(container)],
    }


def _shown(row: dict[str, Any], detail: bool) -> dict[str, Any]:
    """Others learn that a loop failed, not what its error said nor where it runs."""
    if detail:
        return row
    return {**row, "process": None, "last_error": "failed" if row.get("last_error") else None}


def _loops(container: Any) -> list[dict[str, Any]]:
    """The shared table's loops, plus any of this process's loops it lacks (a write or
    the read failed: the answering process still shows what it knows)."""
    try:
        rows = loop_status.read(container.views, datetime.now(UTC))
    except Exception as exc:
        log.warning("loop status table not read: %s", exc)
        rows = []
    status = container.metrics.status
    here = status.process if status is not None else loop_status.process_identity()
    shown = {(row["loop"], row["process"]) for row in rows}
    for loop in container.loops:
        if (loop.name, here) not in shown:
            rows.append(
                {
                    "loop": loop.name,
                    "process": here,
                    "last_success": loop.last_success,
                    "last_error": loop.last_error,
                }
            )
    return rows


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text exposition: requests, loops, log head, view positions and lag."""
    container = get_container(request)
    return Response(container.metrics.render(), media_type=CONTENT_TYPE_LATEST)
