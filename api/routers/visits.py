"""到访: a buyer registered at the sales office; the visit decides ownership (判客)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api import bodies
from api.authorization import GuardDep
from api.bodies import answer
from api.deps import AppDep, ContextDep
from api.results import command_response
from api.schemas import VisitIn, VisitOut

router = APIRouter(prefix="/v1/visits", tags=["visits"])


@router.post("", status_code=201, response_model=VisitOut)
def register_visit(body: VisitIn, app: AppDep, guard: GuardDep, ctx: ContextDep) -> Response:
    """Register a visit with the buyer's full number. Returns who owns the buyer now."""
    guard.project(body.project_id)
    result = app.visits.register_visit(
        ctx.answering(answer(201, bodies.visit)),
        project_id=body.project_id,
        phone=body.phone,
        client_name=body.client_name,
        consultant_id=body.consultant_id,
        partner_id=body.partner_id,
        agent_id=body.agent_id,
    )
    return command_response(result)
