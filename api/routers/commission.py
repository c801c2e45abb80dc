"""佣金方案: the per-project commission policy, versioned like the attribution policy."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api import bodies
from api.bodies import answer, jsonable
from api.deps import AppDep, ContextDep
from api.preconditions import IfMatch, expected_version
from api.results import command_response
from api.schemas import CommissionPolicyIn, CommissionPolicyOut
from api.validation import INT64_MAX

# ``enforce_access`` checked that the project in the path is granted to the caller.
router = APIRouter(prefix="/v1/projects/{project_id}/commission-policy", tags=["commission"])


@router.put("", response_model=CommissionPolicyOut)
def set_commission_policy(
    project_id: str,
    body: CommissionPolicyIn,
    app: AppDep,
    ctx: ContextDep,
    if_match: IfMatch = None,
) -> Response:
    """A new version of the project's channel rates, consultant rate and split, threshold
    and payout stages. Deals keep the version in force when they were opened."""
    expected = expected_version(if_match)
    settings = body.model_dump()
    return command_response(
        app.policies.set_commission_policy(
            ctx.answering(answer(200, bodies.settings)), project_id, settings, expected
        )
    )


@router.get("", response_model=CommissionPolicyOut)
def get_commission_policy(
    project_id: str,
    app: AppDep,
    version: Annotated[int | None, Query(ge=0, le=INT64_MAX, description="An old version")] = None,
) -> dict[str, Any]:
    """The commission policy in force (or ``?version=N``); version 0 is the defaults."""
    body: dict[str, Any] = jsonable(
        bodies.settings(app.policies.commission_policy(project_id, version))
    )
    return body
