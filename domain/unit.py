"""Units (房源): one stream per project, building and unit number.

The Unit stream is the consistency boundary that keeps a unit from being sold twice:
every deal command that holds, advances or releases a unit saves the unit in the same
transaction as the deal, so two deals opened on one unit at the same instant collide on
the unit's version and the retry finds it held.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from eventsourcing.domain import Aggregate

from domain.errors import Conflict, InvalidInput
from domain.values import NAMESPACE
from domain.vocabulary import ORIENTATIONS, UNIT_STATUSES

MAX_PRICE_FEN = 10**13
_LABEL = re.compile(r"^[\w-]{1,32}$")  # \w: letters, digits, _ and CJK, e.g. 3栋, 1201


def unit_id(project_id: str, building: str, number: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"unit:{project_id}:{building}:{number}")


@dataclass(frozen=True)
class UnitSpec:
    building: str
    number: str
    rooms: int
    area: Decimal  # m², two decimals
    floor: int
    orientation: str
    list_price: int  # fen

    def details(self) -> dict[str, Any]:
        return {
            "rooms": self.rooms,
            "area": self.area,
            "floor": self.floor,
            "orientation": self.orientation,
            "list_price": self.list_price,
        }


def _text(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    text = str(value).strip() if value is not None else ""
    if not _LABEL.match(text):
        raise InvalidInput(name, "must be 1-32 letters, digits, '_' or '-', e.g. 3栋 or 1201")
    return text


def _whole(raw: dict[str, Any], name: str, low: int, high: int) -> int:
    value = raw.get(name)
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if re.fullmatch(r"-?\d{1,12}", value) else None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(name, f"must be a whole number from {low} to {high}")
    return value


def _decimal(raw: dict[str, Any], name: str) -> Decimal | None:
    value = raw.get(name)
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or number.as_tuple().exponent < -2:  # type: ignore[operator]
        return None
    return number


def _price(raw: dict[str, Any]) -> int:
    """``list_price_fen`` (integer fen) or ``list_price`` (yuan, at most two decimals)."""
    if raw.get("list_price_fen") not in (None, ""):
        return _whole(raw, "list_price_fen", 1, MAX_PRICE_FEN)
    yuan = _decimal(raw, "list_price")
    if yuan is None or not 0 < yuan * 100 <= MAX_PRICE_FEN:
        raise InvalidInput(
            "list_price", "must be the price in yuan with at most two decimals (or list_price_fen)"
        )
    return int(yuan * 100)


def parse_unit(raw: dict[str, Any]) -> UnitSpec:
    """One unit from an import row; raises InvalidInput naming the bad field."""
    area = _decimal(raw, "area")
    if area is None or not Decimal("1") <= area <= Decimal("100000"):
        raise InvalidInput("area", "must be square metres from 1 to 100000, two decimals at most")
    orientation = str(raw.get("orientation") or "").strip()
    if orientation not in ORIENTATIONS:
        raise InvalidInput("orientation", f"must be one of {', '.join(ORIENTATIONS)}")
    return UnitSpec(
        building=_text(raw, "building"),
        number=_text(raw, "number"),
        rooms=_whole(raw, "rooms", 0, 20),
        area=area.quantize(Decimal("0.01")),
        floor=_whole(raw, "floor", -10, 300),
        orientation=orientation,
        list_price=_price(raw),
    )


class Unit(Aggregate):
    class Event(Aggregate.Event):
        actor: dict[str, str]
        correlation_id: str

    class UnitListed(Aggregate.Created):
        project_id: str
        building: str
        number: str
        rooms: int
        area: Decimal
        floor: int
        orientation: str
        list_price: int

    class UnitRevised(Aggregate.Event):
        """A re-import changed an available unit's details or list price."""

        rooms: int
        area: Decimal
        floor: int
        orientation: str
        list_price: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Unit)
            aggregate.rooms, aggregate.area, aggregate.floor = self.rooms, self.area, self.floor
            aggregate.orientation, aggregate.list_price = self.orientation, self.list_price

    class UnitHeld(Aggregate.Event):
        deal_id: uuid.UUID
        client_id: uuid.UUID

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Unit)
            aggregate.status, aggregate.deal_id = "held", self.deal_id

    class UnitSubscribed(Aggregate.Event):
        deal_id: uuid.UUID

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Unit)
            aggregate.status = "subscribed"

    class UnitContracted(Aggregate.Event):
        deal_id: uuid.UUID
        price: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Unit)
            aggregate.status = "signed"

    class UnitSold(Aggregate.Event):
        """The contract was filed (备案): the sale is registered with the authority."""

        deal_id: uuid.UUID

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Unit)
            aggregate.status = "sold"

    class UnitReleased(Aggregate.Event):
        deal_id: uuid.UUID
        reason: str  # cancelled | swapped

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Unit)
            aggregate.status, aggregate.deal_id = "available", None

    def __init__(
        self,
        project_id: str,
        building: str,
        number: str,
        rooms: int,
        area: Decimal,
        floor: int,
        orientation: str,
        list_price: int,
    ) -> None:
        self.project_id = project_id
        self.building = building
        self.number = number
        self.rooms = rooms
        self.area = Decimal(area)
        self.floor = floor
        self.orientation = orientation
        self.list_price = list_price
        self.status = "available"
        self.deal_id: uuid.UUID | None = None

    @classmethod
    def create_listing(
        cls, project_id: str, spec: UnitSpec, at: datetime, trace: dict[str, Any]
    ) -> Unit:
        return cls._create(
            cls.UnitListed,
            id=unit_id(project_id, spec.building, spec.number),
            project_id=project_id,
            building=spec.building,
            number=spec.number,
            **spec.details(),
            timestamp=at,
            **trace,
        )

    def spec(self) -> UnitSpec:
        return UnitSpec(
            self.building,
            self.number,
            self.rooms,
            self.area,
            self.floor,
            self.orientation,
            self.list_price,
        )

    def revise(self, spec: UnitSpec, at: datetime, trace: dict[str, Any]) -> bool:
        """Apply an import row to a listed unit; False when nothing changes."""
        if spec == self.spec():
            return False
        if self.status != "available":
            raise Conflict(
                f"unit {self.building}-{self.number} is {self.status}; its details cannot change",
                code="unit_unavailable",
            )
        self.trigger_event(self.UnitRevised, **spec.details(), timestamp=at, **trace)
        return True

    def hold(
        self, deal_id: uuid.UUID, client_id: uuid.UUID, at: datetime, trace: dict[str, Any]
    ) -> None:
        if self.status != "available":
            raise Conflict(
                f"unit {self.building}-{self.number} is {self.status}, not available",
                code="unit_unavailable",
            )
        self.trigger_event(
            self.UnitHeld, deal_id=deal_id, client_id=client_id, timestamp=at, **trace
        )

    def _require_deal(self, deal_id: uuid.UUID, *statuses: str) -> None:
        if self.deal_id != deal_id or self.status not in statuses:
            raise Conflict(
                f"unit {self.building}-{self.number} is not held by this deal",
                code="unit_not_held",
            )

    def subscribe(self, deal_id: uuid.UUID, at: datetime, trace: dict[str, Any]) -> None:
        self._require_deal(deal_id, "held")
        self.trigger_event(self.UnitSubscribed, deal_id=deal_id, timestamp=at, **trace)

    def contract(self, deal_id: uuid.UUID, price: int, at: datetime, trace: dict[str, Any]) -> None:
        self._require_deal(deal_id, "subscribed")
        self.trigger_event(self.UnitContracted, deal_id=deal_id, price=price, timestamp=at, **trace)

    def sell(self, deal_id: uuid.UUID, at: datetime, trace: dict[str, Any]) -> None:
        self._require_deal(deal_id, "signed")
        self.trigger_event(self.UnitSold, deal_id=deal_id, timestamp=at, **trace)

    def release(self, deal_id: uuid.UUID, reason: str, at: datetime, trace: dict[str, Any]) -> None:
        self._require_deal(deal_id, *UNIT_STATUSES[1:])
        self.trigger_event(self.UnitReleased, deal_id=deal_id, reason=reason, timestamp=at, **trace)
