"""房源 units: bulk import (CSV or JSON, all rows or none) and listing with filters."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api import bodies
from api.authorization import GuardDep
from api.bodies import answer, jsonable
from api.deps import AppDep, ContextDep, FreshDep, get_container
from api.results import command_response
from api.schemas import MAX_FEN
from api.tabular import TabularDep
from api.uploads import UploadDep, file_body
from domain.errors import InvalidInput, InvalidRows
from domain.vocabulary import Orientation, UnitStatus
from projections import deal_queries
from projections import units as units_view
from yingke.sheets.reading import UnreadableFile, decode_text, read_sheet
from yingke.sheets.units import unit_rows

router = APIRouter(prefix="/v1/projects/{project_id}", tags=["units"])

COLUMNS = (
    "building",
    "number",
    "rooms",
    "area",
    "floor",
    "orientation",
    "list_price",
    "list_price_fen",
)
_IMPORT_BODY = file_body(
    {
        "text/csv": {
            "schema": {"type": "string"},
            "example": "building,number,rooms,area,floor,orientation,list_price\n"
            "3栋,1201,3,89.50,12,south,2350000\n",
        },
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"units": {"type": "array", "items": {"type": "object"}}},
            },
            "example": {
                "units": [
                    {
                        "building": "3栋",
                        "number": "1201",
                        "rooms": 3,
                        "area": "89.50",
                        "floor": 12,
                        "orientation": "south",
                        "list_price_fen": 235000000,
                    }
                ]
            },
        },
    }
)


PriceFen = Annotated[int | None, Query(ge=0, le=MAX_FEN, description="List price, fen")]


def _text(data: bytes) -> str:
    try:
        return decode_text(data)
    except UnreadableFile as exc:
        raise InvalidInput("body", str(exc)) from None


def _legacy_csv(data: bytes) -> bool:
    """A CSV headed only by the English column names keeps its ``line N`` labels."""
    first = _text(data).partition("\n")[0]
    names = [n.strip().lower() for n in next(csv.reader([first]), [])]
    return bool(names) and all(n in COLUMNS for n in names)


def csv_rows(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Rows labelled by their line in the file (the header is line 1)."""
    reader = csv.DictReader(io.StringIO(_text(data), newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise InvalidInput("line 1", f"is not readable CSV: {exc}", code="invalid_csv") from None
    if not header:
        raise InvalidInput("body", "the CSV is empty: it needs a header line")
    reader.fieldnames = [name.strip().lower() for name in header]
    unknown = [name for name in reader.fieldnames if name not in COLUMNS]
    if unknown:
        raise InvalidInput(
            f"line 1: {unknown[0]}",
            f"is not a unit column; use {', '.join(COLUMNS)}",
            code="unknown_column",
        )
    rows: list[tuple[str, dict[str, Any]]] = []
    problems: list[tuple[str, str, str]] = []
    try:
        for record in reader:
            label = f"line {reader.line_num}"
            if record.get(None):  # type: ignore[call-overload]
                problems.append(
                    (f"{label}: body", "has more values than the header", "extra_values")
                )
                continue
            rows.append((label, {k: v for k, v in record.items() if v not in (None, "")}))
    except csv.Error as exc:
        # A field past csv.field_size_limit (131,072 characters), or broken quoting;
        # line_num still counts the lines before the one that failed.
        raise InvalidInput(
            f"line {reader.line_num + 1}", f"is not readable CSV: {exc}", code="invalid_csv"
        ) from None
    if problems:
        raise InvalidRows(problems)
    return rows


def json_rows(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Rows labelled ``item N`` (1-based) from ``{"units": [...]}`` or a bare list."""
    try:
        parsed = json.loads(_text(data))
    except ValueError:
        raise InvalidInput("body", "is not valid JSON") from None
    items = parsed.get("units") if isinstance(parsed, dict) else parsed
    if not isinstance(items, list):
        raise InvalidInput("units", 'must be a list of units: {"units": [...]}')
    bad = [i for i, item in enumerate(items, 1) if not isinstance(item, dict)]
    if bad:
        raise InvalidRows([(f"item {i}: body", "must be an object", "not_an_object") for i in bad])
    return [(f"item {i}", item) for i, item in enumerate(items, 1)]


@router.post("/units:import", openapi_extra=_IMPORT_BODY)
def import_units(
    project_id: str,
    upload: UploadDep,
    app: AppDep,
    ctx: ContextDep,
) -> Response:
    """Import units (房源): an xlsx 一房一价表, CSV or JSON, as the body with its content
    type or as a multipart upload (``file``). Headers 楼栋, 单元, 房号, 户型, 建筑面积, 楼层,
    朝向, 总价 (or 单价) or the English names; values such as 南北通透, 三室两厅, 89.5㎡,
    235万. Existing units are revised if still available. Any bad row → 422 listing every
    problem (``第7行: 建筑面积``; ``line 7: area`` for an English-headed CSV; ``item 3``
    for JSON), and nothing is imported."""
    if upload.kind == "json":
        rows = json_rows(upload.data)
    elif upload.kind == "csv" and not upload.mapping and _legacy_csv(upload.data):
        rows = csv_rows(upload.data)
    else:
        try:
            sheet = read_sheet(upload.data)
        except UnreadableFile as exc:
            raise InvalidInput("body", str(exc)) from None
        rows = unit_rows(sheet, upload.mapping)
    return command_response(
        app.units.import_units(ctx.answering(answer(200, bodies.unit_import)), project_id, rows)
    )


@router.get("/units", dependencies=[FreshDep])
def list_units(
    project_id: str,
    request: Request,
    tab: TabularDep,
    building: str | None = None,
    status: UnitStatus | None = None,
    rooms: Annotated[int | None, Query(ge=0, le=20)] = None,
    orientation: Orientation | None = None,
    floor_from: Annotated[int | None, Query(ge=-10, le=300)] = None,
    floor_to: Annotated[int | None, Query(ge=-10, le=300)] = None,
    area_from: Annotated[float | None, Query(ge=0, le=100_000, description="m²")] = None,
    area_to: Annotated[float | None, Query(ge=0, le=100_000, description="m²")] = None,
    price_from: PriceFen = None,
    price_to: PriceFen = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """The project's units by building, floor and number, each with its ``unit_id`` and
    status (available, held, subscribed, signed, sold); ranges are inclusive."""
    views = get_container(request).views
    return tab.page(
        lambda at, size: deal_queries.list_units(
            views,
            project_id,
            building=building,
            status=status,
            rooms=rooms,
            orientation=orientation,
            floor_from=floor_from,
            floor_to=floor_to,
            area_from=area_from,
            area_to=area_to,
            price_from=price_from,
            price_to=price_to,
            cursor=at,
            limit=size,
        ),
        cursor,
        limit,
        list(units_view.TABLE.columns),
    )


@router.get("/units/{unit_id}")
def get_unit(project_id: str, unit_id: uuid.UUID, guard: GuardDep) -> dict[str, Any]:
    """One unit now, from its stream (a unit of another project answers like a missing one)."""
    unit: dict[str, Any] = jsonable(bodies.unit(guard.unit(project_id, unit_id)))
    return unit
