"""An aggregate's state as JSON, for snapshots (ADR 0068, replacing ADR 0060's pickle).

Decoding a stored snapshot can only ever produce plain data: JSON values, the leaf types
the event store's own transcoder knows (UUID, Decimal, datetime: the same transcodings
events' states use), tuples, sets, and instances of the value classes named here, filled
field by field without running any of their code. The aggregate is a class named here
too, its ``__dict__`` filled from the decoded state, as eventsourcing's own snapshots do.
Nothing in a stored row names a module to import or a callable to call, so a row forged
by someone holding YINGKE_SECRET can at worst be false data (and ``Snapshots`` compares
each row with a fold of the events before serving it the first time).

Values are tagged the way the library's ``JSONTranscoder`` tags them
(``{"_type_": name, "_data_": data}``); a plain dict that has a ``_type_`` key itself, or
keys that are not strings, is tagged ``dict`` (as pairs) so it can never be read as a tag.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoder, Transcoding
from eventsourcing.utils import get_topic

_PLAIN = (str, int, float, bool, type(None))
_TAG, _DATA = "_type_", "_data_"
# Rebuilt after decoding, never stored: an aggregate folded for a read has none.
_NOT_STORED = ("_pending_events",)


class Unencodable(TypeError):
    """The state holds a value this codec does not know: no snapshot is taken of it."""


class Undecodable(ValueError):
    """A stored state that does not decode to the classes named here."""


class StateCodec:
    def __init__(
        self,
        transcoder: Transcoder,
        aggregates: Iterable[type],
        values: Iterable[type],
    ) -> None:
        # The leaf types the event store encodes events' states with (uuid_hex, ...).
        if not isinstance(transcoder, JSONTranscoder):
            raise TypeError("snapshots encode with the event store's JSONTranscoder")
        self._leaves: dict[type, Transcoding] = dict(transcoder.types)
        self._leaf_names: dict[str, Transcoding] = dict(transcoder.names)
        self._aggregates = {get_topic(cls): cls for cls in aggregates}
        self._values: dict[type, tuple[str, tuple[str, ...]]] = {}
        self._value_names: dict[str, tuple[type, frozenset[str]]] = {}
        for cls in values:
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{cls!r} is not a dataclass")
            names = tuple(f.name for f in dataclasses.fields(cls))
            self._values[cls] = (get_topic(cls), names)
            self._value_names[get_topic(cls)] = (cls, frozenset(names))
        clash = set(self._value_names) & (set(self._leaf_names) | {"tuple", "set", "dict"})
        if clash:
            raise ValueError(f"names taken twice: {sorted(clash)}")

    # ------------------------------------------------------------------ encoding

    def encode(self, aggregate: Any) -> bytes:
        cls = type(aggregate)
        topic = get_topic(cls)
        if self._aggregates.get(topic) is not cls:
            raise Unencodable(f"aggregate {topic} is not one snapshots may hold")
        state = {k: v for k, v in aggregate.__dict__.items() if k not in _NOT_STORED}
        body = {"aggregate": topic, "state": self._plain(state)}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    def _plain(self, value: Any) -> Any:
        kind = type(value)
        if kind in _PLAIN:
            return value
        if kind is list:
            return [self._plain(v) for v in value]
        if kind is dict:
            if _TAG in value or any(type(k) is not str for k in value):
                pairs = [[self._plain(k), self._plain(v)] for k, v in value.items()]
                return {_TAG: "dict", _DATA: pairs}
            return {k: self._plain(v) for k, v in value.items()}
        if kind is tuple:
            return {_TAG: "tuple", _DATA: [self._plain(v) for v in value]}
        if kind is set or kind is frozenset:
            # Sorted where it can be, so one state always encodes to the same bytes.
            items = [self._plain(v) for v in value]
            with contextlib.suppress(TypeError):
                items.sort()
            return {_TAG: "set" if kind is set else "frozenset", _DATA: items}
        leaf = self._leaves.get(kind)
        if leaf is not None:
            return {_TAG: leaf.name, _DATA: leaf.encode(value)}
        known = self._values.get(kind)
        if known is not None:
            name, fields = known
            return {_TAG: name, _DATA: {f: self._plain(getattr(value, f)) for f in fields}}
        raise Unencodable(f"no encoding for {kind.__module__}.{kind.__qualname__}")

    # ------------------------------------------------------------------ decoding

    def decode(self, data: bytes) -> Any:
        try:
            body = json.loads(data, object_hook=self._hook)
        except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError
            raise Undecodable(str(exc)) from exc
        if type(body) is not dict or set(body) != {"aggregate", "state"}:
            raise Undecodable("not a snapshot body")
        cls = self._aggregates.get(body["aggregate"]) if type(body["aggregate"]) is str else None
        state = body["state"]
        if cls is None or type(state) is not dict:
            raise Undecodable(f"not an aggregate snapshots may hold: {body['aggregate']!r}")
        for name in state:
            # Instance data only: an entry shadowing a method or property is refused.
            if name in _NOT_STORED or hasattr(cls, name):
                raise Undecodable(f"state names a class attribute: {name!r}")
        aggregate: Any = object.__new__(cls)
        aggregate.__dict__.update(state)
        aggregate.__dict__["_pending_events"] = []
        return aggregate

    def _hook(self, d: dict[str, Any]) -> Any:
        if _TAG not in d:
            return d
        if len(d) != 2 or _DATA not in d or type(d[_TAG]) is not str:
            raise Undecodable(f"malformed tag {sorted(d)}")
        name, data = d[_TAG], d[_DATA]
        if name == "dict":
            return {_hashable(k): v for k, v in _pairs(data)}
        if name == "tuple":
            return tuple(_items(data))
        if name == "set":
            return {_hashable(v) for v in _items(data)}
        if name == "frozenset":
            return frozenset(_hashable(v) for v in _items(data))
        leaf = self._leaf_names.get(name)
        if leaf is not None:
            return leaf.decode(data)
        known = self._value_names.get(name)
        if known is None:
            raise Undecodable(f"unknown type {name!r}")
        cls, fields = known
        if type(data) is not dict or set(data) != fields:
            raise Undecodable(f"fields of {name} do not match")
        # Filled field by field: no __init__, __post_init__ or validator of the class runs.
        value: Any = object.__new__(cls)
        for field, item in data.items():
            object.__setattr__(value, field, item)
        return value


def _items(data: Any) -> list[Any]:
    if type(data) is not list:
        raise Undecodable("expected a list")
    return data


def _pairs(data: Any) -> list[list[Any]]:
    items = _items(data)
    if any(type(p) is not list or len(p) != 2 for p in items):
        raise Undecodable("expected pairs")
    return items


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError as exc:
        raise Undecodable(f"unhashable key {type(value).__name__}") from exc
    return value
