"""Properties: the protection clock under any sequence of contacts, and the monthly pool
cap under any interleaving of claims, releases and time passing."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api import bodies
from domain.errors import Conflict
from domain.policy import Policy
from domain.quota import ClaimQuota, quota_id
from domain.values import Actor
from tests.support import START, FakeClock, ctx, register_consultant, register_visit, shown, unique
from tests.unit.lifecycle_support import TRACE, follow_up, new_client, new_events, visit
from yingke.bootstrap import build
from yingke.settings import load_settings

# ------------------------------------------------------------- protection clock

Step = tuple[str, int]

steps: st.SearchStrategy[Step] = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 3 * 24 * 60)),  # minutes
    st.tuples(st.just("to_deadline"), st.integers(-2, 2)),  # seconds around the end
    st.tuples(st.sampled_from(["effective", "silent", "visit"]), st.just(0)),
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    base = draw(st.integers(1, 240))
    extension = draw(st.integers(1, 240))
    headroom = draw(st.integers(0, 240))
    return Policy(
        version=draw(st.integers(0, 9)),
        protection=f"PT{base}H",
        protection_extension=f"PT{extension}H",
        protection_max=f"PT{base + headroom}H",
        inactivity_release="P999D",
    )


@settings(max_examples=300, deadline=None)
@given(policy=policies(), script=st.lists(steps, max_size=40))
def test_the_protection_clock_holds_its_bounds_and_expires_exactly_when_due(
    policy: Policy, script: list[Step]
) -> None:
    # Given a buyer awarded to cons-1 by a visit at START
    client = new_client(START)
    visit(client, START, policy=policy)
    assert client.owner is not None
    since, epoch = client.owner.since, client.owner.decided_version
    floor = since + policy.protection_delta
    ceiling = since + policy.delta("protection_max")
    extension = policy.delta("protection_extension")
    expected = floor
    now = START

    for kind, amount in script:
        if kind == "advance":
            now += timedelta(minutes=amount)
        elif kind == "to_deadline":
            now = max(now, expected + timedelta(seconds=amount))

        # The deadline processor looks at the buyer: it acts exactly when the end is reached.
        before = client.owner.protected_until
        acted = client.expire_protection(epoch, policy, now, TRACE)
        assert acted == (now >= before)
        if acted:
            assert client.owner is None and client.status == "pool"
            with pytest.raises(Conflict):
                follow_up(client, now, policy=policy)
            break

        if kind == "effective":
            follow_up(client, now, effective=True, policy=policy)
            expected = max(expected, min(now + extension, ceiling))
        elif kind == "silent":
            follow_up(client, now, effective=False, policy=policy)
        elif kind == "visit":
            assert visit(client, now, consultant_id="cons-7", policy=policy).kind == "protected"
            expected = max(expected, min(now + extension, ceiling))

        assert client.owner is not None
        until = client.owner.protected_until
        assert until == expected
        assert floor <= until <= ceiling
        assert until >= before  # only forward
        assert client.owner.decided_version == epoch and client.owner.consultant_id == "cons-1"

    for event in new_events(client):
        if type(event).__name__ == "ProtectionExtended":
            assert event.protected_until > event.previous_until
            assert event.protected_until <= ceiling
            assert event.policy_version == policy.version


# --------------------------------------------------------------------- pool cap

# 22:00 on 31 March in China (UTC+8): the month turns at 16:00 UTC, while UTC is still
# in March. A cap counted on the wrong calendar shows up within a few steps.
MONTH_END = datetime(2026, 3, 31, 14, 0, tzinfo=UTC)
SUPERVISOR = Actor("sup-pool", "supervisor")
BEIJING = timezone(timedelta(hours=8))  # the model's own calendar, not the code's


def china_month(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m")


PoolStep = tuple[str, int]
pool_steps: st.SearchStrategy[PoolStep] = st.one_of(
    st.tuples(st.just("claim"), st.integers(0, 5)),
    st.tuples(st.just("claim"), st.integers(0, 5)),
    st.tuples(st.just("release"), st.integers(0, 5)),
    st.tuples(st.just("advance"), st.integers(10, 150)),  # minutes
)


def _release(app: Any, client_id: Any, by: str) -> None:
    """Put a buyer in the pool the way a sales office does: a loss, approved."""
    asked = app.pool.request_loss(ctx(Actor(by, "consultant")), client_id, "price", "gone quiet")
    app.pool.decide_loss(ctx(SUPERVISOR), client_id, asked.value.request_id, True, "ok")


def test_pool_claims_never_exceed_the_monthly_cap_in_china_time(tmp_path: Path) -> None:
    clock = FakeClock(MONTH_END)
    container = build(load_settings({"YINGKE_DATA_DIR": str(tmp_path)}), clock=clock)
    app = container

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        cap=st.integers(0, 4),
        size=st.integers(1, 6),
        script=st.lists(pool_steps, min_size=1, max_size=14),
    )
    # The rollover, for certain: the cap is used up at 23:xx on 31 March (China), refused,
    # then allowed again from 00:00 on 1 April, while UTC still says March.
    @example(cap=1, size=3, script=[("claim", 0), ("claim", 1), ("advance", 120), ("claim", 1)])
    @example(cap=2, size=2, script=[("claim", 0), ("release", 0), ("claim", 0), ("claim", 1)])
    def check(cap: int, size: int, script: list[PoolStep]) -> None:
        # Given a project with a cap, and `size` buyers released to its pool
        clock.now = MONTH_END
        project = unique("proj")
        app.policies.set_policy(ctx(), project, {"pool_claims_per_month": cap})
        owner = register_consultant(app, project)
        claimant = register_consultant(app, project)
        clients = []
        for i in range(size):
            visited = register_visit(app, project, f"1390000{i:04d}", owner)
            clients.append(uuid.UUID(visited["client_id"]))
            _release(app, clients[-1], owner)
        in_pool, mine = set(range(size)), set[int]()
        used: Counter[str] = Counter()
        accepted: Counter[str] = Counter()

        # When the claimant claims, gives buyers back, and time passes, in any order
        for kind, value in script:
            if kind == "advance":
                clock.advance(minutes=value)
                continue
            index = value % size
            if kind == "release":
                if index in mine:
                    _release(app, clients[index], claimant)
                    mine.discard(index)
                    in_pool.add(index)
                continue
            month = china_month(clock.now)
            if index not in in_pool:
                expected = "not_in_pool"
            elif used[month] >= cap:
                expected = "claim_cap_reached"
            else:
                expected = "claimed"
            try:
                result = app.pool.claim_from_pool(
                    ctx(Actor(claimant, "consultant")), clients[index], claimant
                )
            except Conflict as refused:
                outcome = refused.code
            else:
                outcome = "claimed"
                body = shown(bodies.claimed, result.value)
                assert body["claim_id"]
                assert body["claims_used"] == used[month] + 1
                assert body["owner"]["consultant_id"] == claimant
            # Then every claim is answered as the model says: within the cap, per month
            assert outcome == expected, (month, dict(used), cap)
            if outcome == "claimed":
                used[month] += 1
                accepted[month] += 1
                in_pool.discard(index)
                mine.add(index)

        assert all(count <= cap for count in accepted.values())
        for month, count in used.items():
            quota = app.uow.find(ClaimQuota, quota_id(project, claimant, month))
            assert quota is not None and quota.used == count

    try:
        check()
    finally:
        container.close()
