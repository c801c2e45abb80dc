"""报备: channel reports of a buyer before the visit."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from fastapi import APIRouter, Response

from api import bodies
from api.authorization import Admission, AdmissionDep, GuardDep
from api.bodies import answer, jsonable
from api.deps import in_worker
from api.results import command_response
from api.schemas import ReportIn, ReportOut
from yingke import receipts

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.post("", status_code=201, response_model=ReportOut)
async def file_report(body: ReportIn, admission: AdmissionDep) -> Response:
    """File a report (报备). A rejection is a recorded fact too, so it is also 201; it never
    names the competing channel."""
    # The launch-day path: authentication, the command and the receipt read the store in
    # this one hop to a worker thread (ADR 0074).
    return await in_worker(partial(_file_report, body, admission))


def _file_report(body: ReportIn, admission: Admission) -> Response:
    guard, ctx = admission.context()
    app = guard.app
    guard.project(body.project_id)
    guard.acts_for(partner_id=body.partner_id, agent_id=body.agent_id)
    result = app.reports.file_report(
        ctx.answering(answer(201, bodies.filed_report)),
        project_id=body.project_id,
        partner_id=body.partner_id,
        agent_id=body.agent_id,
        client_name=body.client_name,
        phone=body.phone,
        expected_visit_at=body.expected_visit_at,
        note=body.note,
    )
    assert result.response is not None
    answered = result.response.body
    receipt = receipts.issue(
        app.store, app.key_dir, app.keyer, answered, body.phone, result.recorded
    )
    return command_response(
        replace(result, response=replace(result.response, body={**answered, "receipt": receipt}))
    )


@router.get("/{report_id}", response_model=ReportOut)
def get_report(report_id: str, guard: GuardDep) -> dict[str, Any]:
    """The report and its status: for the channel that filed it and the staff who serve
    its buyer (another channel's reports answer like missing ones)."""
    report: dict[str, Any] = jsonable(bodies.report(guard.report(report_id)))
    return report
