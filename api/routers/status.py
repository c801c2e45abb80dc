"""How far behind the event log each view is: JSON for people, Prometheus for machines."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from api.deps import CallerDep, get_container
from yingke.chain import integrity_failures

router = APIRouter(tags=["views"])


@router.get("/v1/views/status")
def views_status(request: Request, caller: CallerDep) -> dict[str, Any]:
    """Per view: the last position applied, the head of the log, and the lag."""
    container = get_container(request)
    head = container.position()
    lag = container.follower.lag()
    return {
        "head": head,
        "views": [
            {"view": name, "position": pos, "lag": behind} for name, (pos, behind) in lag.items()
        ],
        "deadlines_fired": dict(container.deadlines.fired),
    }


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> str:
    """Prometheus text exposition: log head, view positions and lag, deadlines fired."""
    container = get_container(request)
    lines = [
        "# HELP yingke_events_head Highest notification id in the event log.",
        "# TYPE yingke_events_head gauge",
        f"yingke_events_head {container.position()}",
        "# HELP yingke_view_position Last notification id applied to the view.",
        "# TYPE yingke_view_position gauge",
        "# HELP yingke_view_lag Events in the log not yet applied to the view.",
        "# TYPE yingke_view_lag gauge",
    ]
    for name, (position, behind) in container.follower.lag().items():
        lines.append(f'yingke_view_position{{view="{name}"}} {position}')
        lines.append(f'yingke_view_lag{{view="{name}"}} {behind}')
    lines += [
        "# HELP yingke_deadlines_fired_total Deadline commands that acted, by kind.",
        "# TYPE yingke_deadlines_fired_total counter",
    ]
    for kind, count in container.deadlines.fired.items():
        lines.append(f'yingke_deadlines_fired_total{{kind="{kind}"}} {count}')
    lines += [
        "# HELP yingke_integrity_failures_total Streams whose hash chain failed on load.",
        "# TYPE yingke_integrity_failures_total counter",
        f"yingke_integrity_failures_total {integrity_failures()}",
    ]
    return "\n".join(lines) + "\n"
