"""客户判定 / 申诉: disputes over who brought or owns a buyer, ruled by a manager."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Response

from api import bodies
from api.authorization import GuardDep
from api.bodies import answer, jsonable
from api.deps import AppDep, Caller, ContextDep
from api.dispute_views import for_caller
from api.free_text import author, reads_notes
from api.results import command_response
from api.schemas import AppealIn, DisputeIn, RulingIn
from domain.sealing import SEALED
from domain.services.disputes import DisputeView
from domain.services.uow import Done
from yingke.bootstrap import Container

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
    return _answered(
        app,
        guard.caller,
        app.disputes.open_dispute(
            ctx.answering(answer(201, _shown_to(guard.caller))),
            client_id,
            claimant_kind="channel" if channel else "consultant",
            claimant_id=body.claimant_id,
            reason=body.reason,
            evidence_versions=body.evidence_versions,
            report_id=body.report_id,
        ),
    )


def _opened(
    app: Container, caller: Caller, dispute_id: str, view: DisputeView | None = None
) -> DisputeView:
    """The dispute with the texts this caller reads opened: all of them for a reader of
    the buyer's notes or the claimant (for_caller shows a claimant no ruling's
    reasoning), else the caller's own words. ``view``: the dispute as the access check
    has just read it (its buyer is not read again), else read here, once."""
    if view is None:
        view = app.disputes.dispute(dispute_id)
    state = view.dispute
    claimant = caller.id == state.claimant_id or (
        caller.role == "channel_agent" and caller.partner_id == state.claimant_id
    )
    reveal = claimant or reads_notes(app, caller, view.client)
    return app.disputes.view(view.client, dispute_id, reveal=reveal, author=author(caller))


def _answered(app: Container, caller: Caller, done: Done[DisputeView]) -> Response:
    """A command's answer with the texts this caller reads opened as it is sent. The
    answer as stored (an idempotency record) keeps them ``[sealed]``, and a repeat opens
    them again, as they read now (after an erasure: ``[erased]``)."""
    assert done.response is not None
    body = done.response.body
    texts = _opened(app, caller, str(body["dispute_id"])).texts or {}

    def shown(place: str, value: Any) -> Any:
        return texts.get(place, value) if value == SEALED else value

    opened = {**body, "reason": shown(f"dispute:{body['dispute_id']}", body.get("reason"))}
    if isinstance(body.get("rulings"), list):
        opened["rulings"] = [
            {**r, "reason": shown(f"ruling:{r['version']}", r["reason"])}
            if "reason" in r and "version" in r
            else r
            for r in body["rulings"]
        ]
    if isinstance(body.get("appeal"), dict):
        appeal = body["appeal"]
        opened["appeal"] = {
            **appeal,
            "reason": shown(f"appeal:{body['dispute_id']}", appeal.get("reason")),
        }
    response = replace(done.response, body=jsonable(opened))
    return command_response(replace(done, response=response))


@router.get("/v1/disputes/{dispute_id}")
def get_dispute(dispute_id: str, app: AppDep, guard: GuardDep) -> dict[str, Any]:
    """The dispute with its rulings, the appeal, and who owns the buyer now."""
    view = _opened(app, guard.caller, dispute_id, guard.dispute(dispute_id))
    return for_caller(jsonable(bodies.dispute(view)), guard.caller)


@router.post("/v1/disputes/{dispute_id}/ruling")
def rule(
    dispute_id: str, body: RulingIn, app: AppDep, guard: GuardDep, ctx: ContextDep
) -> Response:
    """A manager rules, citing the events relied on; the ruling after an appeal is final."""
    return _answered(
        app,
        guard.caller,
        app.disputes.rule_dispute(
            ctx.answering(answer(200, bodies.dispute)),
            dispute_id,
            outcome=body.outcome,
            reason=body.reason,
            evidence_versions=body.evidence_versions,
        ),
    )


@router.post("/v1/disputes/{dispute_id}/appeal")
def appeal(
    dispute_id: str, body: AppealIn, app: AppDep, guard: GuardDep, ctx: ContextDep
) -> Response:
    """One appeal, by a party to the dispute (the claimant, the owning consultant, their
    supervisor) or a manager: the relation ``enforce_access`` checked."""
    return _answered(
        app,
        guard.caller,
        app.disputes.appeal_dispute(
            ctx.answering(answer(200, _shown_to(guard.caller))), dispute_id, body.reason
        ),
    )
