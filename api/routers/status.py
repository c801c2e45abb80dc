"""How far behind the event log each view is: JSON for people, Prometheus for machines."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from api.deps import CallerDep, get_container
from yingke.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["views"])


@router.get("/v1/views/status")
def views_status(request: Request, caller: CallerDep) -> dict[str, Any]:
    """Per view: the last position applied, the head of the log, and the lag.

    ``loops`` lists the worker loops running in this process (none with
    YINGKE_WORKERS=none): when each last succeeded and the error of its last step, if it
    failed.
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
        "loops": [
            {
                "loop": loop.name,
                "last_success": loop.last_success.isoformat() if loop.last_success else None,
                "last_error": loop.last_error,
            }
            for loop in container.loops
        ],
    }


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text exposition: requests, loops, log head, view positions and lag."""
    container = get_container(request)
    return Response(container.metrics.render(), media_type=CONTENT_TYPE_LATEST)
