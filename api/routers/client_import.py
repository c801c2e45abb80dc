"""客户迁移: a sales office's client register (xlsx or CSV) brought in as buyers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from api.deps import AppDep, ContextDep
from api.results import POSITION_HEADER
from api.uploads import UploadDep, file_body
from domain.errors import InvalidInput
from domain.services.client_import import ImportReport
from yingke.sheets.clients import client_rows
from yingke.sheets.reading import UnreadableFile, read_sheet

router = APIRouter(prefix="/v1/projects/{project_id}", tags=["clients"])

_EXAMPLE = (
    "姓名,手机,来源,渠道公司,经纪人,置业顾问,意向等级,首次到访,"
    "最近跟进,跟进记录,预算,意向户型,面积,备注\n"
    "张三,138 1234 5678,渠道,lianjia,李四,c-wang,A类,2024/3/5,"
    "2024年3月9日,约周末看房,235万,三室两厅,89.5㎡,\n"
)


@router.post(
    "/clients:import",
    openapi_extra=file_body({"text/csv": {"schema": {"type": "string"}, "example": _EXAMPLE}}),
)
def import_clients(
    project_id: str,
    upload: UploadDep,
    app: AppDep,
    ctx: ContextDep,
    dry_run: Annotated[
        bool, Query(description="Check every row and answer; write nothing")
    ] = False,
) -> Response:
    """Import buyers from a client register (客户台账): xlsx or CSV (UTF-8, BOM or GB18030)
    as the body or a multipart upload. Headers such as 姓名, 手机/电话, 来源/渠道, 渠道公司,
    经纪人, 置业顾问, 意向等级, 首次到访, 最近跟进, 跟进记录, 预算, 意向户型, 面积, 备注
    (``mapping`` overrides them and maps names to ids). All rows or none: any bad row →
    422 listing every problem as ``第7行: 手机``; buyers already here are reported, never
    merged. Re-importing the same rows changes nothing (``unchanged``). ``dry_run=true``
    answers the per-row report (new / unchanged / invalid) without writing buyers.
    Checking a row is a lookup: every run is recorded in ``lookup_audit`` with each buyer
    it found already here, and those count against YINGKE_IMPORT_CLASHES_PER_DAY per
    principal (admins uncapped): past it, 429 ``import_limit`` answering no row, and the
    day's allowance is spent. An erased buyer's number imports like a fresh one."""
    if upload.kind == "json":
        raise InvalidInput("body", "send the register as xlsx or CSV", code="unsupported_file")
    try:
        sheet = read_sheet(upload.data)
    except UnreadableFile as exc:
        raise InvalidInput("body", str(exc)) from None
    rows = client_rows(sheet, upload.mapping)
    # The admin is the migration path (a 50,000-row register): on the record, uncapped.
    cap = None if ctx.actor.role == "admin" else app.settings.import_clashes_per_day
    done = app.client_import.run(ctx, project_id, rows, dry_run=dry_run, cap=cap)
    headers = {POSITION_HEADER: str(done.position)} if done.position is not None else None
    return JSONResponse(report_body(done.value), headers=headers)


def report_body(report: ImportReport) -> dict[str, Any]:
    return {
        "project_id": report.project_id,
        "dry_run": report.dry_run,
        "rows": len(report.rows),
        **{status: report.count(status) for status in ("new", "unchanged", "invalid")},
        "results": [
            {
                "row": r.row,
                "status": r.status,
                "client_id": str(r.client_id) if r.client_id else None,
                "message": r.message,
            }
            for r in report.rows
        ],
    }
