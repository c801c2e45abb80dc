"""The snapshot codec gives back exactly what it was given, and reads nothing but the
plain data and classes it names (ADR 0068)."""

from __future__ import annotations

import pickle
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.application import Application

from yingke.state_codec import StateCodec, Undecodable, Unencodable


@dataclass
class Mark:
    name: str
    at: datetime


class Holder:
    def __init__(self, **state: Any) -> None:
        self.__dict__.update(state)
        self._pending_events: list[Any] = []

    def method(self) -> str:
        return "code"


class Stranger:
    pass


def _codec() -> StateCodec:
    return StateCodec(Application().mapper.transcoder, [Holder], [Mark])


def _state(holder: Holder) -> dict[str, Any]:
    return {k: v for k, v in vars(holder).items() if k != "_pending_events"}


def test_a_state_comes_back_equal_and_of_the_same_types() -> None:
    at = datetime(2026, 12, 3, 6, 30, tzinfo=UTC)
    holder = Holder(
        _id=uuid.uuid4(),
        plain={"a": [1, 2.5, True, None, "x"]},
        pair=(3, 4),
        tags={"b", "a"},
        frozen=frozenset({1}),
        numbered={1: "one"},
        looks_tagged={"_type_": "uuid_hex", "_data_": "not a uuid"},
        amount=Decimal("1.10"),
        marks=[Mark("m", at)],
    )
    codec = _codec()
    back: Any = codec.decode(codec.encode(holder))
    assert type(back.pair) is tuple and type(back.tags) is set
    assert type(back.marks[0]) is Mark and back._pending_events == []
    assert codec.encode(holder) == codec.encode(back)  # one state, one encoding
    assert type(back) is Holder and _state(back) == _state(holder)


def test_what_it_does_not_name_is_not_encoded() -> None:
    with pytest.raises(Unencodable):
        _codec().encode(Holder(other=Stranger()))
    with pytest.raises(Unencodable):
        _codec().encode(Stranger())


@pytest.mark.parametrize(
    "data",
    [
        pickle.dumps(Holder()),
        b'{"aggregate": "builtins:object", "state": {}}',
        b'{"aggregate": "tests.unit.test_state_codec:Holder", "state": {"method": 1}}',
        b'{"aggregate": "tests.unit.test_state_codec:Holder", "state": '
        b'{"x": {"_type_": "os:system", "_data_": "touch /tmp/x"}}}',
        b'{"aggregate": "tests.unit.test_state_codec:Holder", "state": '
        b'{"x": {"_type_": "tests.unit.test_state_codec:Mark", "_data_": {"name": "m"}}}}',
    ],
    ids=["pickle", "other-class", "shadows-a-method", "unknown-type", "missing-field"],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(Undecodable):
        _codec().decode(data)
