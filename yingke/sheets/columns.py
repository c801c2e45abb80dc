"""Which column is which: Chinese headers, their common aliases, and explicit mappings.

A header is matched after NFKC normalisation, without spaces, required-field stars and
any bracketed unit: ``总价(万元)`` is 总价, with the unit 万 remembered for the values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from yingke.sheets.values import text

CLIENT_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "客户姓名", "客户名称", "客户", "名字", "name"),
    "phone": ("手机", "手机号", "手机号码", "电话", "联系电话", "联系方式", "客户电话", "phone"),
    "source": ("来源", "渠道", "客户来源", "来访渠道", "来访方式", "source"),
    "partner": ("渠道公司", "中介公司", "分销公司", "渠道名称", "partner", "partner_id"),
    "agent": ("经纪人", "渠道经纪人", "带看经纪人", "agent"),
    "consultant": ("置业顾问", "顾问", "销售顾问", "归属顾问", "consultant", "consultant_id"),
    "grade": ("意向等级", "等级", "客户等级", "意向级别", "grade"),
    "first_visit": ("首次到访", "到访日期", "首访日期", "首次到访日期", "到访时间", "first_visit"),
    "last_follow_up": ("最近跟进", "最近跟进日期", "最后跟进", "最近跟进时间", "last_follow_up"),
    "follow_up_notes": ("跟进记录", "跟进情况", "跟进内容", "follow_up_notes"),
    "budget": ("预算", "总价预算", "购房预算", "budget"),
    "layout": ("意向户型", "需求户型", "户型", "layout"),
    "area": ("面积", "意向面积", "需求面积", "area"),
    "note": ("备注", "说明", "note"),
}
UNIT_ALIASES: dict[str, tuple[str, ...]] = {
    "building": ("楼栋", "栋", "楼号", "栋号", "幢", "楼栋号", "building"),
    "entrance": ("单元", "单元号", "entrance"),
    "number": ("房号", "房间号", "室号", "number"),
    "rooms": ("户型", "房型", "居室", "rooms"),
    "area": ("建筑面积", "面积", "建面", "area"),
    "floor": ("楼层", "层", "所在楼层", "floor"),
    "orientation": ("朝向", "orientation"),
    "list_price": ("总价", "表价", "标准总价", "房屋总价", "list_price"),
    "list_price_fen": ("list_price_fen",),
    "unit_price": ("单价", "建筑单价", "标准单价", "表单价", "unit_price"),
}
_BRACKET = re.compile(r"[(\[【](.*?)[)\]】]")


@dataclass(frozen=True)
class Column:
    index: int
    header: str  # as written in the sheet, for messages ("第7行: 手机")
    scale: Decimal  # 10000 when the header says 万 (总价(万元)), else 1


class MappingError(ValueError):
    def __init__(self, field: str, message: str, code: str = "invalid_mapping") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def _key(header: str) -> str:
    plain = _BRACKET.sub("", text(header))
    return re.sub(r"[\s*＊:：]", "", plain).lower()


def _scale(header: str) -> Decimal:
    units = "".join(_BRACKET.findall(text(header)))
    return Decimal(10000) if "万" in units else Decimal(1)


def header_score(cells: Sequence[Any], aliases: Mapping[str, tuple[str, ...]]) -> int:
    known = {a.lower() for names in aliases.values() for a in names}
    return sum(_key(text(c)) in known for c in cells)


def find_header(
    rows: Sequence[tuple[int, list[Any]]],
    aliases: Mapping[str, tuple[str, ...]],
    mapping: Mapping[str, str],
    search: int,
) -> int:
    """Index (into ``rows``) of the header row: among the first ``search`` rows, the one
    naming the most known columns (or mapped headers)."""
    mapped = {_key(h) for h in mapping}
    best, best_score = 0, -1
    for i, (_, cells) in enumerate(rows[:search]):
        score = header_score(cells, aliases) + sum(_key(text(c)) in mapped for c in cells)
        if score > best_score:
            best, best_score = i, score
    return best


def resolve(
    headers: Sequence[Any],
    aliases: Mapping[str, tuple[str, ...]],
    mapping: Mapping[str, str],
    row_label: str,
) -> dict[str, Column]:
    """Field → column. ``mapping`` (sheet header → field, or "" to ignore a column) wins
    over the aliases; unknown headers are ignored, two columns for one field refused."""
    explicit = {_key(h): f for h, f in mapping.items()}
    for header, field in mapping.items():
        if field and field not in aliases:
            raise MappingError(
                f"mapping: {header}",
                f"maps to unknown field {field!r}; fields: {', '.join(aliases)}",
            )
    by_alias = {a.lower(): f for f, names in aliases.items() for a in names}
    found: dict[str, Column] = {}
    for index, cell in enumerate(headers):
        header = text(cell)
        key = _key(header)
        if not key:
            continue
        target = explicit[key] if key in explicit else by_alias.get(key)
        if not target:
            continue
        if target in found:
            raise MappingError(
                f"{row_label}: {header}",
                f"is a second column for {target} (first: {found[target].header}); "
                'drop one or map it to "" in the mapping',
                code="duplicate_column",
            )
        found[target] = Column(index, header, _scale(header))
    return found
