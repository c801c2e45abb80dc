"""置业顾问离职: a consultant leaves; their key stops at once and their buyers move on."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api import bodies
from api.bodies import answer, jsonable
from api.deps import AppDep, ContextDep, get_container
from api.schemas import DepartureIn
from domain.errors import InvalidInput
from projections import due, people
from yingke.bootstrap import Container
from yingke.deadlines import continue_departure

router = APIRouter(prefix="/v1/consultants/{consultant_id}", tags=["consultants"])
# ``enforce_access`` judged the caller's relation to the consultant in the path.


@router.post("/departure")
def depart(
    consultant_id: str,
    body: DepartureIn,
    request: Request,
    app: AppDep,
    ctx: ContextDep,
) -> dict[str, Any]:
    """Revoke the leaver's key and move every buyer they own to ``successor_id`` or to
    the pool. Repeating the call resumes an interrupted move. A consultant whose projects
    are not all yours answers like one who does not exist."""
    if (body.successor_id is None) == (not body.to_pool):
        raise InvalidInput("successor_id", "give either successor_id or to_pool: true")
    app.departures.start_departure(
        ctx.answering(answer(201, bodies.departure)), consultant_id, body.successor_id
    )
    container = get_container(request)
    continue_departure(app, container.views, container.follower, consultant_id)
    return _status(app, container, consultant_id)


def _status(app: Container, container: Container, consultant_id: str) -> dict[str, Any]:
    status: dict[str, Any] = jsonable(bodies.departure(app.departures.departure(consultant_id)))
    status["remaining"] = due.owned_count(container.views, consultant_id)
    # The leaver and the successor by name too (people.with_names adds <id>_name).
    people.with_names(container.views, [status])
    return status


@router.get("/departure")
def departure(consultant_id: str, request: Request, app: AppDep) -> dict[str, Any]:
    """The departure's progress: buyers moved and still owned."""
    return _status(app, get_container(request), consultant_id)
