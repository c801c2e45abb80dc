"""Principals and their API keys (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api import bodies
from api.bodies import answer
from api.deps import AppDep, CallerDep, ContextDep
from api.results import command_response
from api.schemas import PrincipalIn, PrincipalOut
from domain.errors import NotFound
from domain.principal import new_key

router = APIRouter(prefix="/v1/principals", tags=["principals"])


@router.post("", status_code=201, response_model=PrincipalOut)
def register_principal(
    body: PrincipalIn, app: AppDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    """Create a principal and return its API key once (stored only as a digest)."""
    key = new_key(body.id)
    result = app.principals.register_principal(
        ctx.answering(bodies.registered(key)),
        body.id,
        body.role,
        body.partner_id,
        body.project_ids,
        key,
        body.team_id,
    )
    return command_response(result)


@router.get("/{principal_id}", response_model=PrincipalOut)
def get_principal(principal_id: str, app: AppDep, caller: CallerDep) -> PrincipalOut:
    principal = app.principals.principal(principal_id)
    if principal is None:
        raise NotFound("principal not found")
    return PrincipalOut(
        id=principal.principal_id,
        role=principal.role,
        partner_id=principal.partner_id,
        project_ids=principal.project_ids,
        revoked=principal.revoked,
        created_at=principal.created_on,
    )


@router.delete("/{principal_id}", response_model=PrincipalOut)
def revoke_principal(
    principal_id: str, app: AppDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    """Revoke at once: the key fails on the very next request, on every replica."""
    return command_response(
        app.principals.revoke_principal(
            ctx.answering(answer(200, bodies.principal)), principal_id, "revoked by admin"
        )
    )
