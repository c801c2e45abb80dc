"""The 一房一价表 (price list, one price per unit) as unit import rows.

Headers 楼栋, 单元, 房号, 户型, 建筑面积, 楼层, 朝向, 总价, 单价 (or the English names of
the CSV import). With a 单元 column the unit number becomes ``<单元>-<房号>`` (1-1201),
since 房号 repeats across entrances; without 楼层 the floor is read from a numeric 房号
(1201 → 12); without 总价 the price is 单价 × 建筑面积, rounded to the yuan as offices do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from yingke.sheets import values
from yingke.sheets.columns import UNIT_ALIASES
from yingke.sheets.reading import Sheet
from yingke.sheets.rows import Row, data_rows, raise_problems

REQUIRED = ("building", "number", "rooms", "area", "orientation")


def _label(value: Any, suffix: str) -> str:
    plain = values.text(value)
    return plain[: -len(suffix)] if suffix and plain.endswith(suffix) and plain != suffix else plain


def _floor_from_number(number: str) -> int | None:
    digits = re.fullmatch(r"(\d{1,3})(\d{2})", number)
    return int(digits.group(1)) if digits else None


def _price_fen(row: Row, area: Any) -> int | None:
    if row.raw("list_price_fen") is not None:
        return row.get("list_price_fen", lambda v: int(values.text(v)))
    if row.raw("list_price") is not None:
        scale = row.columns["list_price"].scale
        return row.get("list_price", lambda v: values.money_fen(v, scale))
    if row.raw("unit_price") is None:
        row.fail("list_price", "is required (总价, or 单价 with 建筑面积)", "missing_value")
        return None
    scale = row.columns["unit_price"].scale
    per_m2 = row.get("unit_price", lambda v: values.money_fen(v, scale))
    if per_m2 is None or area is None:
        return None
    yuan = (Decimal(per_m2) * area / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(yuan) * 100


def _unit(row: Row) -> dict[str, Any]:
    building = row.get("building", values.text, required=True)
    number = row.get("number", values.text, required=True)
    entrance = row.get("entrance", lambda v: _label(v, "单元"))
    if entrance and number:
        number = f"{entrance}-{number}"
    area = row.get("area", values.area_m2, required=True)
    floor = row.get("floor", values.floor)
    if floor is None and row.raw("floor") is None and number is not None:
        floor = _floor_from_number(values.text(row.raw("number")))
        if floor is None:
            row.fail("floor", "is required when 房号 does not carry the floor", "missing_value")
    return {
        "building": building,
        "number": number,
        "rooms": row.get("rooms", values.rooms, required=True),
        "area": str(area) if area is not None else None,
        "floor": floor,
        "orientation": row.get("orientation", values.orientation, required=True),
        "list_price_fen": _price_fen(row, area),
    }


def unit_rows(
    sheet: Sheet, mapping: Mapping[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Labelled rows for the unit import, or InvalidRows naming every bad cell."""
    _, rows = data_rows(sheet, UNIT_ALIASES, mapping or {}, REQUIRED)
    out = [(row.label, _unit(row)) for row in rows]
    raise_problems(rows)
    return out
