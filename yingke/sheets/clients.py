"""A sales office's client register (客户台账) as rows for the client import.

The mapping (``--mapping MAP.json`` or the HTTP ``mapping``) is either a flat
``{"sheet header": "field"}`` or ``{"columns": {…}, "consultants": {"张伟": "c-zhang"},
"partners": {"链家": "lianjia"}}``: the last two turn the names a sheet holds into the
principal and partner ids Yingke knows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from domain.errors import InvalidInput
from domain.migration import MigratedBuyer, SheetRow
from domain.values import check_identifier, normalize_phone
from yingke.sheets import values
from yingke.sheets.columns import CLIENT_ALIASES
from yingke.sheets.reading import Sheet
from yingke.sheets.rows import Row, data_rows

REQUIRED = ("name", "phone")
_WALK_IN = ("自然到访", "自然来访", "自然", "自访", "到访", "来访", "walk_in", "walk-in")
_CHANNEL = re.compile(r"渠道|中介|分销|经纪|带看|报备|channel", re.IGNORECASE)


class ClientMapping:
    def __init__(self, raw: Mapping[str, Any] | None) -> None:
        raw = dict(raw or {})
        structured = any(k in raw for k in ("columns", "consultants", "partners"))
        self.columns: dict[str, str] = dict(raw.get("columns", {}) if structured else raw)
        self.consultants: dict[str, str] = dict(raw.get("consultants", {})) if structured else {}
        self.partners: dict[str, str] = dict(raw.get("partners", {})) if structured else {}
        for part in (self.columns, self.consultants, self.partners):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in part.items()):
                raise InvalidInput("mapping", "every mapping entry must be text → text")


def _identifier(names: Mapping[str, str], what: str) -> Any:
    def parse(value: Any) -> str:
        plain = values.text(value)
        chosen = names.get(plain, plain)
        try:
            return check_identifier(chosen, what)
        except InvalidInput:
            raise values.CellError(
                f"{plain} is not a {what}; map names to ids in the mapping's "
                f'"{what}s" (e.g. {{"{what}s": {{"{plain}": "…"}}}})',
                code="unknown_name",
            ) from None

    return parse


def _source(value: Any) -> str:
    plain = values.text(value)
    if plain.lower() in _WALK_IN:
        return "walk_in"
    if plain.lower() == "channel" or _CHANNEL.search(plain):
        return "channel"
    return "walk_in"


def _buyer(row: Row, mapping: ClientMapping) -> MigratedBuyer | None:
    name = row.get("name", values.text, required=True)
    phone = row.get("phone", lambda v: normalize_phone(values.text(v)), required=True)
    partner = row.get("partner", _identifier(mapping.partners, "partner"))
    source = row.get("source", _source) or ("channel" if partner else "walk_in")
    if source == "channel" and partner is None and not row.problems:
        row.fail("partner", "is required for a channel buyer (渠道公司)", "missing_value")
    budget_scale = row.columns["budget"].scale if "budget" in row.columns else Decimal(1)
    area = row.get("area", values.area_m2)
    first_visit = row.get("first_visit", values.moment)
    last_follow_up = row.get("last_follow_up", values.moment)
    buyer = MigratedBuyer(
        phone=phone or "",
        name=name or "",
        source=source,
        partner_id=partner,
        agent=row.get("agent", values.text),
        consultant_id=row.get("consultant", _identifier(mapping.consultants, "consultant")),
        grade=row.get("grade", values.grade),
        first_visited_at=values.utc(first_visit) if first_visit else None,
        last_follow_up_at=values.utc(last_follow_up) if last_follow_up else None,
        follow_up_notes=row.get("follow_up_notes", values.text),
        budget_fen=row.get("budget", lambda v: values.money_fen(v, budget_scale)),
        rooms=row.get("layout", values.rooms),
        area=str(area) if area is not None else None,
        note=row.get("note", values.text),
    )
    return None if row.problems else buyer


def client_rows(sheet: Sheet, mapping: Mapping[str, Any] | None = None) -> list[SheetRow]:
    """Every row of the register, read, each with its buyer or its problems."""
    parsed = ClientMapping(mapping)
    _, rows = data_rows(sheet, CLIENT_ALIASES, parsed.columns, REQUIRED)
    out = []
    for row in rows:
        buyer = _buyer(row, parsed)
        fields = {name: row.where(name) for name in ("phone", "consultant")}
        out.append(SheetRow(row.label, buyer, tuple(row.problems), fields))
    return out
