"""置业顾问离职: a consultant leaves; their key stops at once and their buyers move on."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from api import bodies
from api.bodies import answer, jsonable
from api.deps import AppDep, CallerDep, ContextDep, get_container
from api.schemas import DepartureIn
from domain.errors import InvalidInput, NotFound
from projections import due
from yingke.bootstrap import Container
from yingke.deadlines import continue_departure

router = APIRouter(prefix="/v1/consultants/{consultant_id}", tags=["consultants"])


@router.post("/departure")
def depart(
    consultant_id: str,
    body: DepartureIn,
    request: Request,
    app: AppDep,
    caller: CallerDep,
    ctx: ContextDep,
) -> dict[str, Any]:
    """Revoke the leaver's key and move every buyer they own to ``successor_id`` or to
    the pool. Repeating the call resumes an interrupted move."""
    if (body.successor_id is None) == (not body.to_pool):
        raise InvalidInput("successor_id", "give either successor_id or to_pool: true")
    leaver = app.principals.principal(consultant_id)
    if leaver is None:
        raise NotFound(f"no consultant {consultant_id}")
    if not all(caller.covers(p) for p in leaver.project_ids):
        raise HTTPException(403, "the leaver works on projects you are not granted")
    app.departures.start_departure(
        ctx.answering(answer(201, bodies.departure)), consultant_id, body.successor_id
    )
    container = get_container(request)
    continue_departure(app, container.views, container.follower, consultant_id)
    return _status(app, container, consultant_id)


def _status(app: Container, container: Container, consultant_id: str) -> dict[str, Any]:
    status: dict[str, Any] = jsonable(bodies.departure(app.departures.departure(consultant_id)))
    status["remaining"] = due.owned_count(container.views, consultant_id)
    return status


@router.get("/departure")
def departure(
    consultant_id: str, request: Request, app: AppDep, caller: CallerDep
) -> dict[str, Any]:
    return _status(app, get_container(request), consultant_id)
