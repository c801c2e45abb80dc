"""The pool cap, the one-owner rule and departures under real concurrency on PostgreSQL.

Sixteen threads are released by one barrier against one PostgreSQL database. Without a
reachable server these tests skip locally and fail on CI (the ``pg_url`` fixture).
"""

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
from domain.quota import ClaimQuota, month_of, quota_id
from domain.values import Actor
from projections.runtime import Loop
from tests.support import FakeClock, ctx, register_consultant, register_visit, shown
from yingke.bootstrap import Container, build
from yingke.deadlines import continue_departure
from yingke.settings import Settings

pytestmark = pytest.mark.postgres

THREADS = 16
CAP = 5
SUPERVISOR = Actor("sup-concurrency", "supervisor")
T = TypeVar("T")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pg(pg_settings: Settings, clock: FakeClock) -> Iterator[Container]:
    container = build(pg_settings, clock=clock)
    yield container
    container.close()


class Collisions:
    """Counts optimistic-concurrency failures: proof that the writers really raced."""

    def __init__(self, app: Container) -> None:
        self.count = 0
        self._lock = threading.Lock()
        save = app.store.save

        def counting_save(*aggregates: Any, **kwargs: Any) -> Any:
            try:
                return save(*aggregates, **kwargs)
            except IntegrityError:
                with self._lock:
                    self.count += 1
                raise

        setattr(app.store, "save", counting_save)  # noqa: B010 - mypy refuses assigning a method


def all_at_once(task: Callable[[int], T], threads: int = THREADS) -> list[T]:
    barrier = threading.Barrier(threads)

    def run(i: int) -> T:
        barrier.wait(timeout=30)
        return task(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, range(threads)))


def pooled_clients(app: Container, project: str, count: int) -> list[uuid.UUID]:
    """Buyers visited by one consultant, given up (战败) and released to the pool."""
    owner = register_consultant(app, project)
    clients = []
    for i in range(count):
        visited = register_visit(app, project, f"1360000{i:04d}", owner)
        client_id = uuid.UUID(visited["client_id"])
        asked = app.pool.request_loss(ctx(Actor(owner, "consultant")), client_id, "price", "")
        app.pool.decide_loss(ctx(SUPERVISOR), client_id, asked.value.request_id, True, "ok")
        clients.append(client_id)
    return clients


def claim(app: Container, client_id: uuid.UUID, consultant: str) -> str:
    try:
        app.pool.claim_from_pool(ctx(Actor(consultant, "consultant")), client_id, consultant)
    except Conflict as refused:
        return refused.code
    return "claimed"


def count_events(app: Container, client_id: uuid.UUID, kind: str) -> int:
    return sum(1 for e in app.clients.history(client_id) if e["type"] == kind)


def test_one_consultant_claiming_sixteen_buyers_at_once_gets_exactly_the_cap(
    pg: Container, clock: FakeClock, project_id: str
) -> None:
    # Given sixteen buyers in the pool and a cap of five claims a month
    app = pg
    app.policies.set_policy(ctx(), project_id, {"pool_claims_per_month": CAP})
    clients = pooled_clients(app, project_id, THREADS)
    claimant = register_consultant(app, project_id)
    collisions = Collisions(app)

    # When one consultant claims all sixteen at the same instant
    outcomes = all_at_once(lambda i: claim(app, clients[i], claimant))

    # Then exactly five succeed and eleven are refused for the cap
    assert Counter(outcomes) == {"claimed": CAP, "claim_cap_reached": THREADS - CAP}
    assert collisions.count > 0
    claimed = [c for c, outcome in zip(clients, outcomes, strict=True) if outcome == "claimed"]
    assert sum(count_events(app, c, "ClaimedFromPool") for c in clients) == CAP
    for client_id in clients:
        owner = app.clients.ownership_as_of(client_id, clock.now)["owner"]
        if client_id in claimed:
            assert (owner["status"], owner["consultant_id"]) == ("owned", claimant)
        else:
            assert owner["status"] == "pool"
    quota = app.uow.find(ClaimQuota, quota_id(project_id, claimant, month_of(clock.now)))
    assert quota is not None
    assert quota.used == CAP and set(quota.counted.values()) == set(claimed)


def test_sixteen_consultants_claiming_one_buyer_leave_exactly_one_owner(
    pg: Container, clock: FakeClock, project_id: str
) -> None:
    # Given one buyer in the pool and sixteen consultants
    app = pg
    app.policies.set_policy(ctx(), project_id, {"pool_claims_per_month": CAP})
    (client_id,) = pooled_clients(app, project_id, 1)
    consultants = [register_consultant(app, project_id) for _ in range(THREADS)]
    collisions = Collisions(app)

    # When they all claim at once
    outcomes = all_at_once(lambda i: claim(app, client_id, consultants[i]))

    # Then one owns the buyer, the others were told it is no longer in the pool
    assert Counter(outcomes) == {"claimed": 1, "not_in_pool": THREADS - 1}
    assert collisions.count > 0
    winner = consultants[outcomes.index("claimed")]
    assert count_events(app, client_id, "ClaimedFromPool") == 1
    assert app.clients.ownership_as_of(client_id, clock.now)["owner"]["consultant_id"] == winner
    # and a lost race does not use up anyone's monthly allowance
    month = month_of(clock.now)
    for consultant in consultants:
        quota = app.uow.find(ClaimQuota, quota_id(project_id, consultant, month))
        assert (quota.used if quota else 0) == (1 if consultant == winner else 0)


def test_a_departure_moves_every_buyer_while_follow_ups_race_it(
    pg: Container, clock: FakeClock, project_id: str
) -> None:
    # Given a consultant who owns twelve buyers, a successor and a busy supervisor
    app = pg
    leaver = register_consultant(app, project_id)
    successor = register_consultant(app, project_id)
    clients = [
        uuid.UUID(register_visit(app, project_id, f"1350000{i:04d}", leaver)["client_id"])
        for i in range(12)
    ]
    follower = Loop("views", pg.follower.run_once, 0.01)
    follower.start()
    try:
        collisions = Collisions(app)

        def work(i: int) -> int:
            if i == 0:  # the manager's departure run
                app.departures.start_departure(ctx(Actor("mgr-1", "manager")), leaver, successor)
                return continue_departure(app, pg.views, pg.follower, leaver, wait_seconds=20)
            logged = 0  # the supervisor keeps following up on every buyer meanwhile
            for round_ in range(2):
                for client_id in clients[(i + round_) % 3 :: 3]:
                    app.followups.log_follow_up(
                        ctx(SUPERVISOR), client_id, method="call", summary="?", effective=True
                    )
                    logged += 1
            return logged

        # When the departure runs while eight threads log follow-ups
        results = all_at_once(work, threads=9)
    finally:
        follower.stop()

    # Then every buyer moved to the successor exactly once, and no follow-up was lost
    assert results[0] == len(clients)
    assert collisions.count > 0
    for client_id in clients:
        owner = app.clients.ownership_as_of(client_id, clock.now)["owner"]
        assert (owner["consultant_id"], owner["basis"]) == (successor, "departure")
        moves = [
            e
            for e in app.clients.history(client_id)
            if e["type"] == "OwnershipTransferred" and e["data"]["basis"] == "departure"
        ]
        assert len(moves) == 1
    follow_ups = sum(count_events(app, c, "FollowUpLogged") for c in clients)
    assert follow_ups == sum(results[1:])
    status = shown(bodies.departure, app.departures.departure(leaver))
    assert status["status"] == "completed" and status["moved"] == len(clients)
    gone = app.principals.principal(leaver)
    assert gone is not None and gone.revoked
