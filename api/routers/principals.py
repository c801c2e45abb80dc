"""Principals and their API keys; the staff directory (员工通讯录)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api import bodies
from api.bodies import answer
from api.deps import GLOBAL_ROLES, AppDep, CallerDep, ContextDep, FreshDep, get_container
from api.results import command_response
from api.schemas import PrincipalChange, PrincipalIn, PrincipalOut, PrincipalPage
from api.tabular import TabularDep
from domain.errors import NotFound
from domain.principal import new_key
from domain.vocabulary import Role
from projections import people
from projections.queries import Page

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
        display_name=body.display_name,
        wecom_user_id=body.wecom_user_id,
        notify_webhook=body.notify_webhook,
    )
    return command_response(result)


COLUMNS: tuple[str, ...] = ("id", "display_name", "role", "partner_id", "project_ids")
COLUMNS += ("team_id", "wecom_user_id", "revoked", "created_at")
# A personal webhook's URL carries its key: shown to admins in JSON, never written into a
# file that is mailed around.


@router.get("", response_model=PrincipalPage, dependencies=[FreshDep])
def list_principals(
    request: Request,
    caller: CallerDep,
    tab: TabularDep,
    role: Role | None = None,
    team_id: Annotated[str | None, Query(max_length=64)] = None,
    project_id: Annotated[str | None, Query(max_length=64)] = None,
    revoked: Annotated[bool | None, Query(description="false: active staff only")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """The staff directory, by id: names, roles, teams, projects. A manager sees the
    principals granted one of the manager's projects; admins see everyone. Webhook URLs
    (they carry a key) are shown to admins only. As CSV or xlsx: every page."""
    container = get_container(request)
    scope = None if caller.role in GLOBAL_ROLES else caller.project_ids

    def item(row: dict[str, Any]) -> dict[str, Any]:
        out = {
            "id": row["principal_id"],
            "display_name": row["display_name"],
            "role": row["role"],
            "partner_id": row["partner_id"],
            "project_ids": row["project_ids"],
            "team_id": row["team_id"],
            "wecom_user_id": row["wecom_user_id"],
            "notify_webhook": None,
            "revoked": bool(row["revoked"]),
            "created_at": row["registered_at"],
        }
        if tab.fmt is not None:
            del out["notify_webhook"]  # see COLUMNS
        elif caller.role == "admin":
            principal = container.principals.principal(row["principal_id"])
            if principal is not None:
                out["notify_webhook"] = principal.notify_webhook
        return out

    def fetch(at: str | None, size: int) -> Page:
        result = people.directory(
            container.views,
            scope,
            role=role,
            team_id=team_id,
            project_id=project_id,
            revoked=revoked,
            cursor=at,
            limit=size,
        )
        return Page([item(row) for row in result.items], result.next_cursor)

    return tab.page(fetch, cursor, limit, COLUMNS)


@router.get("/{principal_id}", response_model=PrincipalOut)
def get_principal(principal_id: str, app: AppDep, caller: CallerDep) -> Any:
    principal = app.principals.principal(principal_id)
    if principal is None:
        raise NotFound("principal not found")
    return bodies.principal(principal)


@router.patch("/{principal_id}", response_model=PrincipalOut)
def update_principal(
    principal_id: str, body: PrincipalChange, app: AppDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    """Change the name, the WeCom userid or the personal webhook: only the fields sent
    change, ``null`` clears an address. Role, team and projects are not changed here."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return command_response(
        app.principals.change_profile(
            ctx.answering(answer(200, bodies.principal)), principal_id, changes
        )
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
