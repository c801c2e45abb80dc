"""Units (房源): listing and revising a project's units from an import, all or none."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.errors import Conflict, InvalidInput, InvalidRows
from domain.services.uow import Context, Done, UnitOfWork
from domain.unit import Unit, UnitSpec, parse_unit, unit_id
from domain.values import check_identifier

MAX_IMPORT_ROWS = 5000


@dataclass(frozen=True)
class UnitImported:
    unit_id: uuid.UUID
    building: str
    number: str
    outcome: str  # "listed", "revised" or "unchanged"


@dataclass(frozen=True)
class UnitImport:
    project_id: str
    rows: int
    units: list[UnitImported] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(u.outcome == outcome for u in self.units)


class Units:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def import_units(
        self, ctx: Context, project_id: str, rows: list[tuple[str, dict[str, Any]]]
    ) -> Done[UnitImport]:
        """List or revise units from labelled rows ("line 7"); all of them or none."""
        check_identifier(project_id, "project_id")
        if not rows:
            raise InvalidInput("units", "the import has no rows")
        if len(rows) > MAX_IMPORT_ROWS:
            raise InvalidInput("units", f"at most {MAX_IMPORT_ROWS} rows per import")
        specs = parse_rows(rows)

        def decide(now: datetime) -> tuple[list[Any], UnitImport]:
            touched: list[Any] = []
            problems: list[tuple[str, str, str]] = []
            done = UnitImport(project_id, len(specs))
            for label, spec in specs:
                uid = unit_id(project_id, spec.building, spec.number)
                unit = self.uow.find(Unit, uid)
                if unit is None:
                    touched.append(Unit.create_listing(project_id, spec, now, ctx.trace))
                    outcome = "listed"
                else:
                    try:
                        outcome = "revised" if unit.revise(spec, now, ctx.trace) else "unchanged"
                    except Conflict as exc:
                        problems.append((f"{label}: number", str(exc), exc.code))
                        continue
                    touched.append(unit)
                done.units.append(UnitImported(uid, spec.building, spec.number, outcome))
            if problems:
                raise InvalidRows(problems)
            return touched, done

        return self.uow.run(ctx, decide)

    def unit(self, uid: uuid.UUID) -> Unit:
        return self.uow.get(Unit, uid, "unit")


def parse_rows(rows: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, UnitSpec]]:
    specs: list[tuple[str, UnitSpec]] = []
    problems: list[tuple[str, str, str]] = []
    seen: dict[tuple[str, str], str] = {}
    for label, raw in rows:
        try:
            spec = parse_unit(raw)
        except InvalidInput as exc:
            problems.append((f"{label}: {exc.field}", str(exc), exc.code))
            continue
        first = seen.setdefault((spec.building, spec.number), label)
        if first != label:
            problems.append(
                (
                    f"{label}: number",
                    f"repeats unit {spec.building}-{spec.number} of {first}",
                    "duplicate_unit",
                )
            )
        specs.append((label, spec))
    if problems:
        raise InvalidRows(problems)
    return specs
