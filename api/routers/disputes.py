"""客户判定 / 申诉: disputes over who brought or owns a buyer, ruled by a manager."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Response

from api import bodies
from api.bodies import answer, jsonable
from api.deps import AppDep, Caller, CallerDep, ContextDep
from api.dispute_views import for_caller
from api.free_text import reads_notes
from api.results import command_response
from api.routers.clients import visible_client
from api.schemas import AppealIn, DisputeIn, RulingIn
from domain.client import Client
from domain.services.disputes import DisputeView
from yingke.bootstrap import Container

router = APIRouter(tags=["disputes"])


def _shown_to(caller: Caller) -> Callable[[DisputeView], dict[str, Any]]:
    """The dispute as this caller may see it; a repeat of the request answers the same."""

    def present(view: DisputeView) -> dict[str, Any]:
        return for_caller(bodies.dispute(view), caller)

    return present


@router.post("/v1/clients/{client_id}/disputes", status_code=201)
def open_dispute(
    client_id: uuid.UUID, body: DisputeIn, app: AppDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    """Open a dispute: a channel claims through its own report; a consultant claims the
    buyer for themselves (a supervisor or manager may file for a consultant)."""
    if caller.role == "channel_agent":
        client = app.clients.client(client_id)
        if not caller.covers(client.project_id) or body.claimant_id != caller.partner_id:
            raise HTTPException(403, "a channel agent disputes only for its own partner")
        kind = "channel"
    else:
        visible_client(app, caller, client_id)
        if caller.role == "consultant" and body.claimant_id != caller.id:
            raise HTTPException(403, "a consultant disputes only for themselves")
        kind = "consultant"
    return command_response(
        app.disputes.open_dispute(
            ctx.answering(answer(201, _shown_to(caller))),
            client_id,
            claimant_kind=kind,
            claimant_id=body.claimant_id,
            reason=body.reason,
            evidence_versions=body.evidence_versions,
            report_id=body.report_id,
        )
    )


def _dispute_for(app: Container, caller: Caller, dispute_id: str) -> tuple[Client, dict[str, Any]]:
    client = app.disputes.dispute_client(dispute_id)
    state = client.dispute(dispute_id)
    claimant = caller.id == state.claimant_id or (
        caller.role == "channel_agent" and caller.partner_id == state.claimant_id
    )
    party = caller.role == "channel_agent" and state.claimant_id == caller.partner_id
    staff = caller.role != "channel_agent" and caller.covers(client.project_id)
    if not (party or staff):
        raise HTTPException(404, "dispute not found")
    # The claimant reads its own claim (for_caller shows it no ruling's reasoning).
    reveal = claimant or reads_notes(app, caller, client)
    dispute = jsonable(bodies.dispute(app.disputes.dispute(dispute_id, reveal)))
    return client, dispute


@router.get("/v1/disputes/{dispute_id}")
def get_dispute(dispute_id: str, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    """The dispute with its rulings, the appeal, and who owns the buyer now."""
    return for_caller(_dispute_for(app, caller, dispute_id)[1], caller)


@router.post("/v1/disputes/{dispute_id}/ruling")
def rule(
    dispute_id: str, body: RulingIn, app: AppDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    """A manager rules, citing the events relied on; the ruling after an appeal is final."""
    _dispute_for(app, caller, dispute_id)
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
    dispute_id: str, body: AppealIn, app: AppDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    """One appeal, by a party to the dispute (the claimant or the owning consultant)."""
    client, dispute = _dispute_for(app, caller, dispute_id)
    owner = client.owner.consultant_id if client.owner else None
    earlier_owner = dispute["owner_at_opening"].get("consultant_id")
    is_party = caller.id in (dispute["claimant_id"], owner, earlier_owner) or (
        caller.role == "channel_agent" and caller.partner_id == dispute["claimant_id"]
    )
    if not (is_party or caller.role in ("supervisor", "manager", "admin")):
        raise HTTPException(403, "only a party to the dispute may appeal")
    return command_response(
        app.disputes.appeal_dispute(
            ctx.answering(answer(200, _shown_to(caller))), dispute_id, body.reason
        )
    )
