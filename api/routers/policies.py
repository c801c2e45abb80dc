"""Per-project attribution policy (判客规则), versioned."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api import bodies
from api.bodies import answer, jsonable
from api.deps import AppDep, ContextDep
from api.preconditions import IfMatch, expected_version
from api.results import command_response
from api.schemas import PolicyIn, PolicyOut
from api.validation import INT64_MAX

# ``enforce_access`` checked that the project in the path is granted to the caller.
router = APIRouter(prefix="/v1/projects/{project_id}/policy", tags=["policy"])


@router.put("", response_model=PolicyOut)
def set_policy(
    project_id: str,
    body: PolicyIn,
    app: AppDep,
    ctx: ContextDep,
    if_match: IfMatch = None,
) -> Response:
    """Replace the project's policy with a new version; omitted fields take the defaults."""
    expected = expected_version(if_match)
    return command_response(
        app.policies.set_policy(
            ctx.answering(answer(200, bodies.settings)), project_id, body.model_dump(), expected
        )
    )


@router.get("", response_model=PolicyOut)
def get_policy(
    project_id: str,
    app: AppDep,
    version: Annotated[int | None, Query(ge=0, le=INT64_MAX, description="An old version")] = None,
) -> dict[str, Any]:
    """The policy in force (or ``?version=N``); version 0 is the defaults."""
    body: dict[str, Any] = jsonable(
        bodies.settings(app.policies.policy_version(project_id, version))
    )
    return body
