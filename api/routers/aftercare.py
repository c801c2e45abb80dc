"""After the visit: 跟进 follow-ups, grades, profile, transfers, 战败 losses, 公海池 claims."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from api import bodies
from api.authorization import Guard, GuardDep
from api.bodies import answer
from api.deps import AppDep, ContextDep
from api.results import command_response
from api.schemas import (
    ClaimIn,
    DecisionIn,
    FollowUpIn,
    GradeIn,
    LossRequestIn,
    ProfileIn,
    TransferIn,
)

router = APIRouter(prefix="/v1/clients/{client_id}", tags=["aftercare"])

# ``enforce_access`` judged the caller's relation to the buyer in the path; the aggregate
# still refuses a consultant acting on someone else's buyer.


@router.post("/follow-ups", status_code=201)
def log_follow_up(client_id: uuid.UUID, body: FollowUpIn, app: AppDep, ctx: ContextDep) -> Response:
    """Log a follow-up (跟进) by the owner; an effective one extends protection."""
    return command_response(
        app.followups.log_follow_up(
            ctx.answering(answer(201, bodies.follow_up)),
            client_id,
            method=body.method,
            summary=body.summary,
            effective=body.effective,
            next_contact_at=body.next_contact_at,
            grade=body.grade,
        )
    )


@router.post("/grade")
def change_grade(client_id: uuid.UUID, body: GradeIn, app: AppDep, ctx: ContextDep) -> Response:
    """Grade the buyer A/B/C (意向等级); the follow-up cadence follows the grade."""
    return command_response(
        app.followups.change_grade(
            ctx.answering(answer(200, bodies.ownership)), client_id, body.grade, body.reason
        )
    )


@router.put("/profile")
def update_profile(client_id: uuid.UUID, body: ProfileIn, app: AppDep, ctx: ContextDep) -> Response:
    """Replace the structured demand profile (客户画像)."""
    return command_response(
        app.followups.update_profile(
            ctx.answering(answer(200, bodies.profile)),
            client_id,
            body.model_dump(exclude_none=True),
        )
    )


@router.post("/transfers")
def transfer(client_id: uuid.UUID, body: TransferIn, app: AppDep, ctx: ContextDep) -> Response:
    """Move the buyer to another consultant (manager only); a fresh protection period."""
    return command_response(
        app.followups.transfer(
            ctx.answering(answer(200, bodies.ownership)),
            client_id,
            body.to_consultant_id,
            body.reason,
        )
    )


@router.post("/loss-requests", status_code=201)
def request_loss(
    client_id: uuid.UUID, body: LossRequestIn, app: AppDep, ctx: ContextDep
) -> Response:
    """Ask to give the buyer up (战败申请), with a standard reason; a supervisor reviews."""
    return command_response(
        app.pool.request_loss(
            ctx.answering(answer(201, bodies.loss_requested)), client_id, body.reason, body.note
        )
    )


@router.post("/loss-requests/{request_id}/approve")
def approve_loss(
    client_id: uuid.UUID,
    request_id: str,
    body: DecisionIn,
    app: AppDep,
    ctx: ContextDep,
) -> Response:
    """Approve: the buyer is released to the public pool (公海池)."""
    return command_response(
        app.pool.decide_loss(
            ctx.answering(answer(200, bodies.loss_decided)),
            client_id,
            request_id,
            True,
            body.comment,
        )
    )


@router.post("/loss-requests/{request_id}/reject")
def reject_loss(
    client_id: uuid.UUID,
    request_id: str,
    body: DecisionIn,
    app: AppDep,
    ctx: ContextDep,
) -> Response:
    return command_response(
        app.pool.decide_loss(
            ctx.answering(answer(200, bodies.loss_decided)),
            client_id,
            request_id,
            False,
            body.comment,
        )
    )


@router.post("/claims", status_code=201)
def claim(
    client_id: uuid.UUID, body: ClaimIn, app: AppDep, guard: GuardDep, ctx: ContextDep
) -> Response:
    """Claim a buyer from the public pool (捞客): claimed at once, or pending approval.
    409 when the buyer is not in the pool or the monthly cap is used up."""
    consultant_id = body.consultant_id or guard.caller.id
    guard.acts_for(consultant_id=consultant_id)
    return command_response(
        app.pool.claim_from_pool(
            ctx.answering(answer(201, bodies.claimed)), client_id, consultant_id
        )
    )


def _decide_claim(
    client_id: uuid.UUID,
    claim_id: str,
    approve: bool,
    body: DecisionIn,
    app: Any,
    guard: Guard,
    ctx: Any,
) -> Response:
    claim = guard.client(client_id).claims.get(claim_id)
    if claim is not None:
        # A supervisor decides the claims of their own team's consultants.
        guard.for_consultant(claim.consultant_id)
    return command_response(
        app.pool.decide_claim(
            ctx.answering(answer(200, bodies.claim_decided)),
            client_id,
            claim_id,
            approve,
            body.comment,
        )
    )


@router.post("/claims/{claim_id}/approve")
def approve_claim(
    client_id: uuid.UUID,
    claim_id: str,
    body: DecisionIn,
    app: AppDep,
    guard: GuardDep,
    ctx: ContextDep,
) -> Response:
    return _decide_claim(client_id, claim_id, True, body, app, guard, ctx)


@router.post("/claims/{claim_id}/reject")
def reject_claim(
    client_id: uuid.UUID,
    claim_id: str,
    body: DecisionIn,
    app: AppDep,
    guard: GuardDep,
    ctx: ContextDep,
) -> Response:
    return _decide_claim(client_id, claim_id, False, body, app, guard, ctx)
