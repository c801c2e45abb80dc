"""Cell values as sales offices type them, read into plain numbers, dates and codes.

Every parser takes what a spreadsheet cell holds (text, a number, a datetime) and
returns the value or raises ``CellError`` with a message staff can act on.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
# Excel counts days from 1899-12-30 (the 1900 leap-year bug folded in); serials in this
# range are the years 1954 to 2119, which keeps a stray number from becoming a date.
_EXCEL_EPOCH = date(1899, 12, 30)
_SERIAL_RANGE = (20000, 80000)

_NUMERALS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_NUMERALS |= {"六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_MONEY_UNITS = {"亿": Decimal(10**8), "万": Decimal(10**4), "元": Decimal(1), "": Decimal(1)}
_ORIENTATIONS = {
    "南": "south",
    "北": "north",
    "东": "east",
    "西": "west",
    "东南": "southeast",
    "南东": "southeast",
    "西南": "southwest",
    "南西": "southwest",
    "东北": "northeast",
    "北东": "northeast",
    "西北": "northwest",
    "北西": "northwest",
    "南北": "north_south",
    "北南": "north_south",
    "东西": "east_west",
    "西东": "east_west",
}
_ENGLISH_ORIENTATIONS = frozenset(_ORIENTATIONS.values())


class CellError(ValueError):
    def __init__(self, message: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.code = code


def text(value: Any) -> str:
    """The cell as trimmed text in NFKC form (full-width digits and commas made plain,
    ㎡ → m2); whole-number floats lose their ``.0`` (Excel stores 1201 as 1201.0)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return unicodedata.normalize("NFKC", str(value)).strip()


def blank(value: Any) -> bool:
    return text(value) == ""


def _decimal(raw: str, what: str) -> Decimal:
    try:
        number = Decimal(raw.replace(",", "").replace(" ", ""))
    except InvalidOperation:
        raise CellError(f"is not a number: {what}") from None
    if not number.is_finite():
        raise CellError(f"is not a number: {what}")
    return number


def money_fen(value: Any, scale: Decimal = Decimal(1)) -> int:
    """An amount in yuan as integer fen: 2350000, "2,350,000", "235万", "¥235.5万元",
    "2350000元". ``scale`` is the header's unit (万 for a column headed 总价(万元))."""
    raw = text(value)
    match = re.fullmatch(r"[¥￥]?\s*([-+]?[\d,]*\.?\d+)\s*(亿|万)?\s*元?", raw)
    if not match:
        raise CellError("must be an amount in yuan, e.g. 2350000, 2,350,000 or 235万")
    unit = _MONEY_UNITS[match.group(2) or ""] if match.group(2) else scale
    fen = _decimal(match.group(1), raw) * unit * 100
    if fen <= 0:
        raise CellError("must be more than zero")
    return int(fen.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def area_m2(value: Any) -> Decimal:
    """Square metres: 89.5, "89.5㎡", "89.5平", "89.5平米", "89.5 m²" (two decimals)."""
    raw = text(value)
    match = re.fullmatch(r"([\d,]*\.?\d+)\s*(m2|平方米|平米|平方|平|方)?", raw, re.IGNORECASE)
    if not match:
        raise CellError("must be square metres, e.g. 89.5 or 89.5㎡")
    area = _decimal(match.group(1), raw)
    if not Decimal(1) <= area <= Decimal(100000):
        raise CellError("must be from 1 to 100000 m²")
    return area.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def chinese_number(raw: str) -> int | None:
    """0-99 written in digits or in Chinese numerals (三, 十二, 二十一)."""
    if raw.isdigit():
        return int(raw)
    if not raw or any(c not in _NUMERALS for c in raw):
        return None
    if "十" not in raw:
        return _NUMERALS[raw] if len(raw) == 1 else None
    tens, _, ones = raw.partition("十")
    if len(tens) > 1 or len(ones) > 1:
        return None
    return (_NUMERALS[tens] if tens else 1) * 10 + (_NUMERALS[ones] if ones else 0)


def rooms(value: Any) -> int:
    """Bedrooms from a layout: 3, "三室两厅", "3室2厅1卫", "三房", "两居", "2居室"."""
    match = re.fullmatch(r"([\d一二两三四五六七八九十]+)\s*(?:(?:室|房|居室|居).*)?", text(value))
    count = chinese_number(match.group(1)) if match else None
    if count is None or not 0 <= count <= 20:
        raise CellError("must be a layout such as 3, 三室两厅 or 3室2厅")
    return count


def floor(value: Any) -> int:
    """A floor: 12, "12层", "第12层", "12F", "12楼", "-1", "B1" (basement 1 → -1)."""
    raw = text(value).upper()
    basement = re.fullmatch(r"(?:B|地下)(\d{1,2})(?:层|F)?", raw)
    if basement:
        return -int(basement.group(1))
    match = re.fullmatch(r"第?(-?\d{1,3})(?:层|F|楼)?", raw)
    if not match or not -10 <= int(match.group(1)) <= 300:
        raise CellError("must be a floor such as 12, 12层 or 12F")
    return int(match.group(1))


def orientation(value: Any) -> str:
    """南 → south, 东南 → southeast, 南北通透 → north_south; English codes pass through."""
    raw = text(value).lower()
    if raw in _ENGLISH_ORIENTATIONS:
        return raw
    core = re.sub(r"^(坐.朝|朝向?|向)", "", raw)
    core = re.sub(r"(通透|向|朝向)$", "", core)
    if core in _ORIENTATIONS:
        return _ORIENTATIONS[core]
    raise CellError(
        "must be an orientation: 南, 北, 东, 西, 东南, 西南, 东北, 西北, 南北通透 or 东西通透",
        code="invalid_orientation",
    )


def grade(value: Any) -> str:
    """A/B/C in the forms offices write: A, a, A类, A级, A类客户."""
    match = re.fullmatch(r"([ABCabc])\s*(类|级|类客户|级客户|客户)?", text(value))
    if not match:
        raise CellError("must be a grade A, B or C (A类, B类, C类)", code="invalid_grade")
    return match.group(1).upper()


def _from_serial(serial: float) -> datetime:
    if not _SERIAL_RANGE[0] <= serial <= _SERIAL_RANGE[1]:
        raise CellError("is a number but not an Excel date")
    moment = datetime.combine(_EXCEL_EPOCH, time()) + timedelta(days=serial)
    return moment.replace(tzinfo=CHINA)


def moment(value: Any) -> datetime:
    """A date or date-time as offices type it, in China time unless it carries a zone:
    a date cell, an Excel serial (45356), 2024/3/5, 2024-03-05, 2024.3.5, 2024年3月5日,
    each optionally followed by a time such as 14:30."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=CHINA)
    if isinstance(value, date):
        return datetime.combine(value, time(), CHINA)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_serial(float(value))
    raw = text(value)
    if re.fullmatch(r"\d{5}(\.\d+)?", raw):
        return _from_serial(float(raw))
    match = re.fullmatch(
        r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
        r"(?:[ T]+(\d{1,2})[:：时](\d{2})(?:[:：分](\d{2}))?秒?)?",
        raw,
    )
    if match:
        y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
        try:
            return datetime(y, mo, d, h, mi, s, tzinfo=CHINA)
        except ValueError:
            raise CellError("is not a real date") from None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise CellError(
            "must be a date such as 2024/3/5, 2024-03-05 or 2024年3月5日", code="invalid_date"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CHINA)


def utc(moment_: datetime) -> datetime:
    return moment_.astimezone(UTC)
