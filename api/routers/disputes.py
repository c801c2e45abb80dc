"""客户判定 / 申诉: disputes over who brought or owns a buyer, ruled by a manager."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response

from api import bodies
from api.authorization import GuardDep
from api.bodies import answer, jsonable
from api.deps import AppDep, Caller, ContextDep
from api.dispute_views import for_caller
from api.free_text import reads_notes
from api.results import command_response
from api.schemas import AppealIn, DisputeIn, RulingIn
from domain.services.disputes import DisputeView

router = APIRouter(tags=["disputes"])


def _shown_to(caller: Caller) -> Callable[[DisputeView], dict[str, Any]]:
    """The dispute as this caller may see it; a repeat of the request answers the same."""

    def present(view: DisputeView) -> dict[str, Any]:
        return for_caller(bodies.dispute(view), caller)

    return present


@router.post("/v1/clients/{client_id}/disputes", status_code=201)
def open_dispute(
    client_id: uuid.UUID, body: DisputeIn, app: AppDep, guard: GuardDep, ctx: ContextDep
) -> Response:
    """Open a dispute: a channel claims through its own report; a consultant claims the
    buyer for themselves (a supervisor or manager may file for a consultant)."""
    channel = guard.relation == "partner"
    if channel:
        guard.acts_for(partner_id=body.claimant_id)
    else:
        guard.acts_for(consultant_id=body.claimant_id)
    return command_response(
        app.disputes.open_dispute(
            ctx.answering(answer(201, _shown_to(guard.caller))),
            client_id,
            claimant_kind="channel" if channel else "consultant",
            claimant_id=body.claimant_id,
            reason=body.reason,
            evidence_versions=body.evidence_versions,
            report_id=body.report_id,
        )
    )


@router.get("/v1/disputes/{dispute_id}")
def get_dispute(dispute_id: str, app: AppDep, guard: GuardDep) -> dict[str, Any]:
    """The dispute with its rulings, the appeal, and who owns the buyer now."""
    view, caller = guard.dispute(dispute_id), guard.caller
    state = view.dispute
    claimant = caller.id == state.claimant_id or (
        caller.role == "channel_agent" and caller.partner_id == state.claimant_id
    )
    # The claimant reads its own claim (for_caller shows it no ruling's reasoning).
    if claimant or reads_notes(app, caller, view.client):
        view = app.disputes.dispute(dispute_id, reveal=True)
    return for_caller(jsonable(bodies.dispute(view)), caller)


@router.post("/v1/disputes/{dispute_id}/ruling")
def rule(dispute_id: str, body: RulingIn, app: AppDep, ctx: ContextDep) -> Response:
    """A manager rules, citing the events relied on; the ruling after an appeal is final."""
    return command_response(
        app.disputes.rule_dispute(
            ctx.answering(answer(200, bodies.dispute)),
            dispute_id,
            outcome=body.outcome,
            reason=body.reason,
            evidence_versions=body.evidence_versions,
        )
    )


@router.post("/v1/disputes/{dispute_id}/appeal")
def appeal(
    dispute_id: str, body: AppealIn, app: AppDep, guard: GuardDep, ctx: ContextDep
) -> Response:
    """One appeal, by a party to the dispute (the claimant, the owning consultant, their
    supervisor) or a manager: the relation ``enforce_access`` checked."""
    return command_response(
        app.disputes.appeal_dispute(
            ctx.answering(answer(200, _shown_to(guard.caller))), dispute_id, body.reason
        )
    )
