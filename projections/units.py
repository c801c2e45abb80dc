"""units: the sales office's inventory (房源), one row per unit, with its status now."""

from __future__ import annotations

from typing import Any

from domain.unit import Unit
from projections.runtime import Rows, Table

TABLE = Table(
    "units",
    ("unit_id",),
    {
        "unit_id": "text",
        "project_id": "text",
        "building": "text",
        "number": "text",
        "rooms": "int",
        "area": "real",
        "floor": "int",
        "orientation": "text",
        "list_price_fen": "int",
        "status": "text",  # available | held | subscribed | signed | sold
        "deal_id": "text",
        "listed_at": "ts",
        "updated_at": "ts",
    },
    indexes=(("project_id", "building", "floor", "number"), ("project_id", "status")),
)

_STATUS = {
    Unit.UnitHeld: "held",
    Unit.UnitSubscribed: "subscribed",
    Unit.UnitContracted: "signed",
    Unit.UnitSold: "sold",
    Unit.UnitReleased: "available",
}


def _details(event: Any) -> dict[str, Any]:
    return {
        "rooms": event.rooms,
        "area": float(event.area),
        "floor": event.floor,
        "orientation": event.orientation,
        "list_price_fen": event.list_price,
    }


class Units:
    name = "units"
    tables: tuple[Table, ...] = (TABLE,)

    def handles(self, event: Any) -> bool:
        return isinstance(event, Unit.Event)

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        key = str(event.originator_id)
        if isinstance(event, Unit.UnitListed):
            rows.put(
                TABLE.name,
                {
                    "unit_id": key,
                    "project_id": event.project_id,
                    "building": event.building,
                    "number": event.number,
                    **_details(event),
                    "status": "available",
                    "deal_id": None,
                    "listed_at": event.timestamp,
                    "updated_at": event.timestamp,
                },
            )
            return
        row = rows.get(TABLE.name, key)
        if row is None:
            return
        status = next((s for cls, s in _STATUS.items() if isinstance(event, cls)), None)
        if isinstance(event, Unit.UnitRevised):
            row.update(_details(event))
        elif status is not None:
            row["status"] = status
            row["deal_id"] = None if status == "available" else str(event.deal_id)
        row["updated_at"] = event.timestamp
        rows.put(TABLE.name, row)
