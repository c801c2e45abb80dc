"""The store's own ``save`` (domain/application.py) records what the library's would."""

from __future__ import annotations

import uuid
from datetime import datetime

from domain.locator import ReportLocator, locator_id
from tests.support import FakeClock
from yingke.bootstrap import Container

TRACE = {"actor": {"id": "tester", "role": "system"}, "correlation_id": "save-test"}


def _locator(project_id: str, at: datetime) -> ReportLocator:
    return ReportLocator.place(str(uuid.uuid4()), uuid.uuid4(), project_id, "P", at, TRACE)


def test_aggregates_and_nones_are_recorded_in_order_with_their_positions(
    app: Container, clock: FakeClock, project_id: str
) -> None:
    first, second = _locator(project_id, clock.now), _locator(project_id, clock.now)

    recordings = app.store.save(first, None, second)

    assert [r.domain_event.originator_id for r in recordings] == [first.id, second.id]
    positions = [r.notification.id for r in recordings]
    assert positions == sorted(positions) and len(set(positions)) == 2
    assert app.uow.find(ReportLocator, first.id) is not None
    assert app.uow.find(ReportLocator, second.id) is not None
    assert app.store.save(first) == []  # nothing pending any more


def test_a_bare_event_beside_an_aggregate_loses_neither(
    app: Container, clock: FakeClock, project_id: str
) -> None:
    alone, aggregate = _locator(project_id, clock.now), _locator(project_id, clock.now)
    (event,) = alone.collect_events()

    recordings = app.store.save(aggregate, event)

    assert {r.domain_event.originator_id for r in recordings} == {aggregate.id, alone.id}
    assert app.uow.find(ReportLocator, locator_id(alone.report_id)) is not None
    assert app.uow.find(ReportLocator, aggregate.id) is not None
