"""What if the rules had been different? Replays as jobs (ADR 0059)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.authorization import GuardDep
from api.deps import AppDep, CallerDep
from api.schemas import JobOut, PolicyIn, WhatIfIn
from api.tabular import TabularDep
from domain.errors import InvalidInput
from domain.services.whatif import check_overrides, check_window

router = APIRouter(tags=["what-if"])

CHANGE_COLUMNS = ("client_id", "kind", "subject", "live", "alternative", "detail")


def _check_policy(overrides: dict[str, Any]) -> None:
    """The same checks as ``PUT …/policy``: the body's types, then the domain's rules."""
    try:
        PolicyIn.model_validate(overrides)
    except ValidationError as bad:
        first = bad.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"policy.overrides.{where}", first["msg"]) from None
    check_overrides(overrides)


@router.post(
    "/v1/projects/{project_id}/what-if",
    status_code=202,
    response_model=JobOut,
    responses={202: {"description": "Accepted: follow `Location` to the job"}},
)
def what_if(project_id: str, body: WhatIfIn, app: AppDep, caller: CallerDep) -> Response:
    """Replay every buyer of the project with activity in [from, to) under the policy with
    these overrides, and list the decisions that would change (owner or channel, reports
    accepted or rejected, expiries and pool releases, commission per payee). Read-only;
    answers 202 with a job to follow at `GET /v1/jobs/{job_id}`."""
    # enforce_access has already judged the caller against ``project_id`` (the table).
    overrides = body.policy.overrides
    check_window(body.from_, body.to)
    _check_policy(overrides)
    params = {"from": body.from_.isoformat(), "to": body.to.isoformat(), "overrides": overrides}
    job = app.jobs.create("what-if", project_id, caller.id, params)
    since, until = body.from_, body.to
    app.job_runner.start(
        job, lambda progress: app.whatif.run(project_id, since, until, overrides, progress)
    )
    return JSONResponse(
        JobOut.model_validate(job.as_dict()).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.job_id}"},
    )


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobOut,
    responses={
        200: {
            "content": {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
                "text/csv": {},
            }
        }
    },
)
def get_job(job_id: str, guard: GuardDep, tabular: TabularDep) -> Any:
    """A job's status, progress (buyers done / total) and, once done, its result. With
    `Accept: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet` (or
    `text/csv`, or `?format=`), the result's changes as one row each."""
    job = guard.job(job_id)  # another project's job answers like a missing one
    if tabular.fmt is None:
        return job.as_dict()
    if job.status != "done" or job.result is None:
        raise HTTPException(409, f"the job is {job.status}: its result is not ready")
    named = type(tabular)(tabular.fmt, tabular.zh, f"what-if-{job.job_id}")
    return named.download(job.result["changes"], CHANGE_COLUMNS)
