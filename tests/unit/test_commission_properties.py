"""Properties of the commission ledger under any rules and any walk through a deal:
it always holds exactly what the payout stages allow, never a negative line, never more
than the rates, and every reversal cancels exactly one earlier accrual."""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain.commission import (
    BP,
    CommissionRules,
    LedgerKey,
    OpenAccrual,
    Target,
    settle,
    targets,
    validate_commission_settings,
)
from domain.deal import Attribution, Deal
from domain.errors import DomainError
from domain.vocabulary import FAULTS, MILESTONES, PAYMENT_PLANS
from tests.support import START

TRACE: dict[str, Any] = {"actor": {"id": "fin-1", "role": "finance"}, "correlation_id": "req-prop"}
LIST_PRICE = 300_000_000
DEADLINE = START + timedelta(days=7)
PARTNERS = (None, "partner-a", "partner-b")
CONSULTANTS = ("cons-1", "cons-2", "cons-3")


@st.composite
def commission_rules(draw: st.DrawFn) -> CommissionRules:
    first = draw(st.integers(0, BP))
    second = draw(st.integers(0, BP - first))
    milestones = draw(st.lists(st.sampled_from(MILESTONES), min_size=1, unique=True))
    size = len(milestones) - 1
    cuts = sorted(draw(st.lists(st.integers(0, BP), min_size=size, max_size=size)))
    shares = [hi - lo for lo, hi in zip([0, *cuts], [*cuts, BP], strict=True)]
    settings_ = {
        "default_channel_rate_bp": draw(st.integers(0, 2000)),
        "channel_rates_bp": {"partner-b": draw(st.integers(0, BP))},
        "consultant_rate_bp": draw(st.integers(0, 100)),
        "consultant_split_bp": {
            "first_receiver": first,
            "accompanying": second,
            "closing": BP - first - second,
        },
        "earn_threshold_bp": draw(st.integers(0, BP)),
        "payout_stages": [
            {"milestone": m, "share_bp": s} for m, s in zip(milestones, shares, strict=True)
        ],
    }
    return CommissionRules.from_settings(0, validate_commission_settings(settings_))


ACTIONS = (
    "deposit",
    "subscribe",
    "pay",
    "loan",
    "approve",
    "refuse",
    "disburse",
    "contract",
    "file",
    "deliver",
    "certify",
    "cancel",
    "swap",
    "reattribute",
    "wait",
)
HAPPY_PATH = (
    "deposit",
    "subscribe",
    "pay",
    "loan",
    "approve",
    "contract",
    "disburse",
    "file",
    "pay",
    "deliver",
    "certify",
)
steps = st.tuples(st.sampled_from(ACTIONS), st.integers(0, BP))


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple[str, int]]:
    """The way from deposit to certificate, with any other steps slipped in between."""
    script: list[tuple[str, int]] = []
    for action in HAPPY_PATH:
        script += draw(st.lists(steps, max_size=2))
        script.append((action, draw(st.integers(0, BP))))
    return script


class LedgerAudit:
    """Replays the ledger events one by one, checking each against what came before."""

    def __init__(self) -> None:
        self.accruals: dict[str, tuple[LedgerKey, int]] = {}
        self.reversed: set[str] = set()

    def take(self, events: list[Any]) -> None:
        for entry in events:
            name = type(entry).__name__
            if not name.startswith("Commission"):
                continue
            key = (entry.payee_kind, entry.payee_id, entry.role, entry.milestone)
            assert entry.amount > 0
            if name == "CommissionAccrued":
                assert entry.entry_id not in self.accruals
                self.accruals[entry.entry_id] = (key, entry.amount)
            else:
                # A reversal cancels exactly one earlier, not yet reversed accrual
                assert entry.reverses in self.accruals
                assert entry.reverses not in self.reversed
                assert self.accruals[entry.reverses] == (key, entry.amount)
                self.reversed.add(entry.reverses)

    def net(self) -> dict[LedgerKey, int]:
        out: dict[LedgerKey, int] = defaultdict(int)
        for entry_id, (key, amount) in self.accruals.items():
            if entry_id not in self.reversed:
                out[key] += amount
        return {k: v for k, v in out.items() if v}


def step(deal: Deal, rules: CommissionRules, action: str, n: int, moment: Any) -> None:
    price = deal.agreed_price or 0
    due = max(0, price - deal.received)
    part = max(1, due * n // BP)
    if action == "deposit":
        deal.pay_deposit(1 + n * 1_000, "cash", DEADLINE, rules, moment, TRACE)
    elif action == "subscribe":
        offer = max(deal.received, LIST_PRICE * (5_000 + n) // BP)
        deal.sign_subscription(offer, PAYMENT_PLANS[n % 3], None, rules, moment, TRACE)
    elif action == "pay":
        deal.receive_payment(part, "down_payment", rules, moment, TRACE)
    elif action == "loan":
        deal.apply_loan("ICBC", part, moment, TRACE)
    elif action == "approve":
        deal.approve_loan(None, moment, TRACE)
    elif action == "refuse":
        deal.refuse_loan("no", moment, TRACE)
    elif action == "disburse":
        loan = (deal.loan_amount or 0) - deal.loan_disbursed
        deal.receive_payment(max(1, min(loan, due)), "loan_disbursement", rules, moment, TRACE)
    elif action == "contract":
        offer = max(deal.received, price * (9_000 + n // 5) // BP)
        deal.sign_contract("HT", offer, rules, moment, TRACE)
    elif action == "file":
        deal.file_contract(None, rules, moment, TRACE)
    elif action == "deliver":
        if due:
            deal.receive_payment(due, "full_payment", rules, moment, TRACE)
        deal.deliver(rules, moment, TRACE)
    elif action == "certify":
        deal.issue_certificate(None, rules, moment, TRACE)
    elif action == "cancel":
        deal.cancel("x", FAULTS[n % 3], rules, moment, TRACE)
    elif action == "swap":
        deal.swap_unit(
            unit_id=uuid.uuid4(),
            building="B",
            number=str(n),
            list_price=LIST_PRICE,
            reason="x",
            rules=rules,
            at=moment,
            trace=TRACE,
        )
    elif action == "reattribute":
        consultant = CONSULTANTS[n % 3]
        partner = PARTNERS[(n // 3) % 3]
        roles = {**deal.roles, "closing": consultant}
        attribution = Attribution(consultant, partner, None, "ruling", 0)
        deal.reattribute(attribution, roles, "dispute", rules, moment, TRACE)


@settings(max_examples=300, deadline=None)
@given(rules=commission_rules(), script=scripts(), partner=st.sampled_from(PARTNERS))
def test_the_ledger_always_holds_what_the_stages_allow(
    rules: CommissionRules, script: list[tuple[str, int]], partner: str | None
) -> None:
    # Given a deal opened under ``rules``
    deal = Deal.open(
        uuid.uuid4(),
        project_id="p1",
        client_id=uuid.uuid4(),
        unit_id=uuid.uuid4(),
        building="A",
        number="1",
        list_price=LIST_PRICE,
        attribution=Attribution("cons-1", partner, None, "report", 0),
        roles={"first_receiver": "cons-2", "accompanying": "cons-3", "closing": "cons-1"},
        commission_policy_version=0,
        at=START,
        trace=TRACE,
    )
    audit = LedgerAudit()
    moment = START
    for action, n in script:
        moment += timedelta(days=10) if action == "wait" else timedelta(hours=1)
        # When any step is taken (refused steps change nothing)
        with contextlib.suppress(DomainError):
            step(deal, rules, action, n, moment)
        audit.take(list(deal.collect_events()))

        # Then the ledger holds exactly what the stages allow, line by line
        goal = {k: t.amount for k, t in targets(rules, deal.payees(), deal.progress()).items()}
        assert audit.net() == goal
        assert all(amount > 0 for amount in goal.values())
        # never more than the rates allow on the price agreed
        price = deal.agreed_price or 0
        channel = sum(v for k, v in goal.items() if k[0] == "channel")
        consultants = sum(v for k, v in goal.items() if k[0] == "consultant")
        rate = rules.channel_rate(deal.attribution.partner_id or "")
        assert channel <= price * rate // BP
        assert consultants <= price * rules.consultant_rate_bp // BP
        # and a cancelled deal holds nothing: every accrual was reversed
        if deal.stage == "cancelled":
            assert audit.net() == {} and deal.commission_totals()["net_fen"] == 0
        assert deal.commission_totals()["net_fen"] == sum(goal.values())
    event(f"ended {deal.stage}, {len(audit.accruals)} accruals, {len(audit.reversed)} reversed")


KEYS = st.tuples(
    st.sampled_from(["channel", "consultant"]),
    st.sampled_from(["a", "b"]),
    st.sampled_from(["closing", "channel"]),
    st.sampled_from(MILESTONES[:3]),
)


@given(
    held=st.lists(st.tuples(KEYS, st.integers(1, 10**9)), max_size=12),
    goal=st.dictionaries(KEYS, st.integers(1, 10**9), max_size=6),
)
def test_settling_reaches_any_goal_with_accruals_and_whole_reversals(
    held: list[tuple[LedgerKey, int]], goal: dict[LedgerKey, int]
) -> None:
    accruals = [OpenAccrual(f"e{i}", key, amount) for i, (key, amount) in enumerate(held)]
    by_id = {a.entry_id: a for a in accruals}

    moves = settle(accruals, {k: Target(v, 0, 0, 0, 0) for k, v in goal.items()})

    net: dict[LedgerKey, int] = defaultdict(int)
    for a in accruals:
        net[a.key] += a.amount
    reversed_ids = [m.reverses for m in moves if m.kind == "reverse"]
    assert len(reversed_ids) == len(set(reversed_ids))
    for move in moves:
        assert move.amount > 0
        if move.kind == "reverse":
            assert move.reverses is not None
            original = by_id[move.reverses]
            assert (original.key, original.amount) == (move.key, move.amount)
            net[move.key] -= move.amount
        else:
            net[move.key] += move.amount
        assert net[move.key] >= 0
    assert {k: v for k, v in net.items() if v} == goal
    # Settling again changes nothing
    again = [OpenAccrual(str(i), key, amount) for i, (key, amount) in enumerate(goal.items())]
    assert settle(again, {k: Target(v, 0, 0, 0, 0) for k, v in goal.items()}) == []
