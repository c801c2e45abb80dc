"""The what-if replay over a realistic generated log (the benchmark's generator, which
drives the aggregates through the application's own decisions), plus deals.

The strongest oracle: replaying with NO overrides must re-take every recorded decision,
so it lists no change at all. Then a 15-day protection must release buyers earlier,
refuse the follow-ups of consultants who would no longer own them, and move commission.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
from eventsourcing.domain import Aggregate

from bench import rebuild_views as gen
from domain.commission import CommissionRules
from domain.deal import Attribution, Deal
from domain.errors import InvalidInput
from domain.services.deals import consultant_roles
from domain.services.whatif import ProjectLog, WhatIf, collect
from domain.whatif import PolicyTimeline

PROJECT = "proj-1"


class Memory:
    """The generator's writer, keeping the log in memory in the order it was written."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.written = 0
        self.pending: list[Any] = []

    def add(self, *aggregates: Aggregate) -> None:
        for aggregate in aggregates:
            self.events.extend(aggregate.collect_events())

    def flush(self) -> None:
        pass


def deal_for(buyer: gen.Buyer, writer: Memory) -> None:
    """What domain.services.deals does: open on the owner, record each step on the buyer."""
    client = buyer.client
    if client is None or client.owner is None:
        return
    owner, rules = client.owner, CommissionRules()
    trace = gen.trace(owner.consultant_id, "consultant")
    at = buyer.later(days=1)
    deal = Deal.open(
        uuid.uuid4(),
        project_id=buyer.project,
        client_id=client.id,
        unit_id=uuid.uuid4(),
        building="3",
        number="1201",
        list_price=3_000_000_00,
        attribution=Attribution(
            owner.consultant_id, owner.partner_id, owner.report_id, owner.basis, 0
        ),
        roles=consultant_roles(client, owner),
        commission_policy_version=0,
        at=at,
        trace=trace,
    )

    def step(milestone: str, amount: int | None) -> None:
        client.record_deal_milestone(
            deal_id=deal.id,
            unit_id=deal.unit_id,
            milestone=milestone,
            deal_status=deal.status,
            amount=amount,
            at=buyer.now,
            trace=trace,
        )

    step("opened", None)
    deal.pay_deposit(
        5_000_000, "wechat_pay", at + timedelta(days=15), rules, buyer.later(hours=1), trace
    )
    step("deposit_paid", 5_000_000)
    deal.sign_subscription(2_900_000_00, "full", None, rules, buyer.later(days=2), trace)
    step("subscribed", None)
    deal.receive_payment(1_000_000_00, "down_payment", rules, buyer.later(days=3), trace)
    step("payment_received", 1_000_000_00)
    writer.add(deal, client)


def generated(seed: int, events: int) -> ProjectLog:
    rng, writer = random.Random(seed), Memory()
    office = gen.make_office(writer)  # type: ignore[arg-type]
    office.projects = [PROJECT]
    span = timedelta(days=90).total_seconds()
    while len(writer.events) < events:
        buyer = gen.Buyer(office, rng, writer, gen.EPOCH + timedelta(seconds=rng.uniform(0, span)))  # type: ignore[arg-type]
        gen.live(buyer)
        if rng.random() < 0.25:
            deal_for(buyer, writer)
    return collect(writer.events, PROJECT)


WINDOW = (gen.EPOCH, gen.EPOCH + timedelta(days=200))


@pytest.fixture(scope="module")
def log() -> ProjectLog:
    return generated(seed=16, events=15_000)


def replay(log: ProjectLog, overrides: dict[str, Any]) -> dict[str, Any]:
    return WhatIf(None).run(PROJECT, *WINDOW, overrides, log=log)  # type: ignore[arg-type]


def test_the_same_rules_change_nothing(log: ProjectLog) -> None:
    result = replay(log, {})
    assert result["buyers"] > 500 and result["events_replayed"] > 10_000
    assert result["changes"] == [], result["changes"][:5]
    assert result["commission"] == []


def test_the_same_rules_change_nothing_on_other_seeds() -> None:
    for seed in (1, 2):
        result = replay(generated(seed, 6_000), {})
        assert result["changes"] == [], result["changes"][:5]


def test_a_shorter_protection_releases_buyers_earlier(log: ProjectLog) -> None:
    result = replay(log, {"protection": "P15D"})
    changes = result["changes"]
    earlier = result["released_earlier"]
    assert len(earlier) > 50
    for change in changes:
        if change["kind"] == "release" and change["detail"].startswith("earlier"):
            assert change["live"] is None or change["alternative"] < change["live"]
    # No release moves later when protection only got shorter.
    assert not [c for c in changes if c["kind"] == "release" and c["detail"].startswith("later")]
    refused = {c["subject"] for c in changes if c["kind"] == "refused"}
    assert "FollowUpLogged" in refused  # by someone who would no longer own the buyer
    owners = [c for c in changes if c["kind"] == "owner"]
    assert {c["client_id"] for c in owners} <= {c["client_id"] for c in changes}
    moved = result["commission"]
    assert moved and all(line["delta"] != 0 for line in moved)
    assert {line["payee_kind"] for line in moved} == {"channel", "consultant"}


def test_a_longer_protection_never_releases_earlier(log: ProjectLog) -> None:
    result = replay(log, {"protection": "P60D"})
    assert result["released_earlier"] == []
    expiries = [c for c in result["changes"] if c["subject"] == "protection expiry"]
    assert expiries and {c["detail"] for c in expiries} <= {"later", "not at all"}


def test_visit_first_accepts_reports_report_first_refused(log: ProjectLog) -> None:
    result = replay(log, {"judge_rule": "visit_first"})
    flips = [c for c in result["changes"] if c["kind"] == "report"]
    assert flips and all(c["live"].startswith("rejected") for c in flips)


def test_overrides_are_checked_against_every_version() -> None:
    with pytest.raises(InvalidInput) as bad:
        PolicyTimeline([], {"protection": "P100D"}, gen.EPOCH)
    assert bad.value.field == "protection_max"
