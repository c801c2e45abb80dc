"""Nothing sells a unit twice: deals opened (or swapped) onto one unit at the same instant
on PostgreSQL end with exactly one deal holding it."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from eventsourcing.persistence import IntegrityError

from api import bodies
from domain.errors import Conflict
from domain.values import Actor
from tests.support import body_of, ctx, register_consultant, register_visit, shown
from yingke.bootstrap import Container, build
from yingke.settings import Settings

pytestmark = pytest.mark.postgres

WRITERS = 16
T = TypeVar("T")


@pytest.fixture
def pg_app(pg_settings: Settings) -> Iterator[Container]:
    container = build(pg_settings)
    yield container
    container.close()


def count_conflicts(app: Container) -> Callable[[], int]:
    """Counts failed saves, to show the writers really collided on the unit."""
    lock, seen = threading.Lock(), [0]
    save = app.store.save

    def counting_save(*aggregates: Any, **kwargs: Any) -> Any:
        try:
            return save(*aggregates, **kwargs)
        except IntegrityError:
            with lock:
                seen[0] += 1
            raise

    setattr(app.store, "save", counting_save)  # noqa: B010 - mypy refuses assigning a method
    return lambda: seen[0]


def all_at_once(task: Callable[[int], T], writers: int = WRITERS) -> list[T | Exception]:
    barrier = threading.Barrier(writers)

    def run(i: int) -> T | Exception:
        barrier.wait(timeout=30)
        try:
            return task(i)
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(max_workers=writers) as pool:
        return list(pool.map(run, range(writers)))


def buyers(app: Container, project_id: str, n: int) -> list[tuple[uuid.UUID, Actor]]:
    """``n`` buyers, each owned by their own consultant after a walk-in visit."""
    out = []
    for i in range(n):
        consultant = register_consultant(app, project_id)
        visit = register_visit(app, project_id, f"1390000{i:04d}", consultant)
        out.append((uuid.UUID(visit["client_id"]), Actor(consultant, "consultant")))
    return out


def list_units(app: Container, project_id: str, *numbers: str) -> list[uuid.UUID]:
    rows = [
        (
            f"line {i + 2}",
            {
                "building": "1",
                "number": number,
                "rooms": 3,
                "area": "90",
                "floor": 8,
                "orientation": "south",
                "list_price_fen": 150_000_000,
            },
        )
        for i, number in enumerate(numbers)
    ]
    body = body_of(app.units.import_units(ctx(), project_id, rows))
    return [uuid.UUID(u["unit_id"]) for u in body["units"]]


def test_sixteen_concurrent_opens_on_one_unit_leave_exactly_one_deal(
    pg_app: Container, project_id: str
) -> None:
    # Given one available unit and sixteen buyers, each with their consultant
    [unit_id] = list_units(pg_app, project_id, "0801")
    people = buyers(pg_app, project_id, WRITERS)
    conflicts = count_conflicts(pg_app)

    # When all sixteen consultants open a deal on it at the same instant
    results = all_at_once(
        lambda i: body_of(pg_app.deals.open_deal(ctx(people[i][1]), people[i][0], unit_id))
    )

    # Then one deal holds the unit and fifteen were refused as unavailable
    opened = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(opened) == 1, results
    assert Counter(r.code for r in refused) == Counter({"unit_unavailable": WRITERS - 1})
    assert conflicts() > 0  # the writers really met on the unit's stream
    unit = shown(bodies.unit, pg_app.units.unit(unit_id))
    assert (unit["status"], unit["deal_id"]) == ("held", opened[0]["deal_id"])
    held = [e for e in pg_app.store.events.get(unit_id) if type(e).__name__ == "UnitHeld"]
    assert len(held) == 1
    # And only the winner's buyer shows a deal in their history
    with_deal = [
        client_id
        for client_id, _ in people
        if any(e["type"] == "DealMilestoneRecorded" for e in pg_app.clients.history(client_id))
    ]
    assert with_deal == [uuid.UUID(opened[0]["client_id"])]


def test_concurrent_swaps_onto_one_unit_leave_exactly_one_holder(
    pg_app: Container, project_id: str
) -> None:
    # Given eight deals, each on its own unit, and one more unit everybody wants
    writers = 8
    units = list_units(pg_app, project_id, *[f"10{i:02d}" for i in range(writers + 1)])
    wanted, own = units[0], units[1:]
    people = buyers(pg_app, project_id, writers)
    deals = [
        uuid.UUID(body_of(pg_app.deals.open_deal(ctx(actor), client_id, own[i]))["deal_id"])
        for i, (client_id, actor) in enumerate(people)
    ]

    # When all of them swap onto the wanted unit at once
    manager = ctx(Actor("mgr", "manager"))
    results = all_at_once(
        lambda i: body_of(
            pg_app.deals.swap_unit(manager, deals[i], new_unit_id=wanted, reason="view")
        ),
        writers,
    )

    # Then one swap won; every other deal still holds its own unit
    won = [r for r in results if isinstance(r, dict)]
    assert len(won) == 1
    assert all(
        isinstance(r, Conflict) and r.code == "unit_unavailable" for r in results if r not in won
    )
    assert shown(bodies.unit, pg_app.units.unit(wanted))["deal_id"] == won[0]["deal_id"]
    holders = {
        shown(bodies.unit, pg_app.units.unit(u))["deal_id"]
        for u in own
        if shown(bodies.unit, pg_app.units.unit(u))["status"] == "held"
    }
    assert len(holders) == writers - 1
