"""Events stored by the first release still read back, and replay to the same state.

The fixture was written on the code before the aggregates were split into parts (see
tests/fixtures/stored_events.py); it covers every event class of every aggregate then.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from domain.policy import Policy
from tests.fixtures.stored_events import aggregate_state, load
from yingke.bootstrap import build
from yingke.settings import Settings

FIXTURE = load()
POLICY_DEFAULTS = Policy().settings()


@pytest.fixture(scope="module")
def stored() -> list[StoredEvent]:
    return [
        StoredEvent(
            originator_id=uuid.UUID(row["originator_id"]),
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=row["state"].encode("utf-8"),
        )
        for row in FIXTURE["events"]
    ]


@pytest.fixture
def mapper(sqlite_settings: Settings) -> Iterator[Mapper[uuid.UUID]]:
    """The mapper the application reads its own store with."""
    container = build(sqlite_settings)
    yield container.store.mapper
    container.close()


def test_every_stored_event_maps_to_a_class_of_the_same_topic(
    stored: list[StoredEvent], mapper: Mapper[uuid.UUID]
) -> None:
    for row in stored:
        event = mapper.to_domain_event(row)
        assert get_topic(type(event)) == row.topic
        assert event.originator_version == row.originator_version


def test_every_stream_replays_to_the_state_it_had_when_stored(
    stored: list[StoredEvent], mapper: Mapper[uuid.UUID]
) -> None:
    streams: dict[str, list[Any]] = defaultdict(list)
    for row in stored:
        streams[str(row.originator_id)].append(mapper.to_domain_event(row))
    assert streams.keys() == FIXTURE["snapshots"].keys()
    for originator_id, events in streams.items():
        aggregate = None
        for event in events:
            aggregate = event.mutate(aggregate)
        expected = FIXTURE["snapshots"][originator_id]
        assert get_topic(type(aggregate)) == expected["class"]
        state = aggregate_state(aggregate)
        # Attributes added since the fixture was made must not disturb what v1 events
        # rebuild; they start empty on old streams.
        added = {name: state.pop(name) for name in set(state) - set(expected["state"])}
        # So do policy fields added since: an old version reads them as their defaults.
        for (version, _), (stored_version, _) in zip(
            state.get("versions", []), expected["state"].get("versions", []), strict=True
        ):
            if isinstance(version, dict) and isinstance(stored_version, dict):
                for name in set(version) - set(stored_version):
                    assert version.pop(name) == POLICY_DEFAULTS[name], (originator_id, name)
        assert state == expected["state"], originator_id
        assert all(value in (None, [], {}, 0, False) for value in added.values()), added


def test_the_fixture_holds_every_kind_of_aggregate() -> None:
    classes = {snapshot["class"] for snapshot in FIXTURE["snapshots"].values()}
    assert {topic.split(":")[1] for topic in classes} >= {
        "Client",
        "MaskedReportPool",
        "Deal",
        "Unit",
        "Principal",
        "ProjectPolicy",
        "CommissionPolicy",
        "ClaimQuota",
        "Departure",
        "ReportLocator",
        "DisputeLocator",
        "IdempotencyRecord",
    }
    assert len({row["topic"] for row in FIXTURE["events"]}) >= 75
