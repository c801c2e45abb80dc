"""Properties of the commission ledger under any rules and any walk through a deal:
it always holds exactly what the payout stages allow, never a negative line, never more
than the rates, and every reversal cancels exactly one earlier accrual.

"What the stages allow" comes from ``reference_ledger`` below, written from the policy's
words (README "Deals, units and commission", domain.md) over facts this test keeps
itself (``Books``), and never from domain.commission's own ``targets``: a wrong stage
rule in the domain then shows up as a difference instead of agreeing with itself.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
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
def commission_rules(draw: st.DrawFn) -> tuple[dict[str, Any], CommissionRules]:
    """A policy as staff would write it, and the domain's rules read from it."""
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
    policy = validate_commission_settings(settings_)
    return policy, CommissionRules.from_settings(0, policy)


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


@dataclass
class Books:
    """What the sales office knows of the deal, kept by this test from the steps the deal
    accepted: the facts the policy's words speak of, not the deal's own reading of them."""

    partner: str | None
    roles: dict[str, str]
    subscription_price: int | None = None
    contract_price: int | None = None
    plan: str | None = None
    received: int = 0
    loan_amount: int | None = None
    loan_disbursed: int = 0
    contracted: bool = False
    filed: bool = False
    delivered: bool = False
    certified: bool = False
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def price(self) -> int | None:
        """The contract price once signed, else the subscription price."""
        return self.contract_price if self.contract_price is not None else self.subscription_price


def reference_ledger(policy: dict[str, Any], books: Books) -> dict[LedgerKey, int]:
    """What each ledger line should hold, from the policy's words:

    - a cancelled deal holds nothing (cancellation reverses everything);
    - nothing is earned until ``earn_threshold_bp`` of the price has been received;
    - then each payout stage pays its ``share_bp`` once its milestone is reached:
      ``threshold`` at once, ``contract`` on signing, ``contract_and_loan`` on signing
      and loan disbursement (or with no mortgage to wait for), ``filing`` on filing,
      ``delivery`` on delivery, ``certificate`` on the property certificate;
    - the channel partner earns its own rate of the price (``channel_rates_bp``, else
      ``default_channel_rate_bp``); the consultants share ``consultant_rate_bp`` of the
      price by ``consultant_split_bp`` among first receiver / accompanying / closing;
    - amounts are whole fen, rounded down, and a line of 0 fen is no line.
    """
    price = books.price
    if books.cancelled or not price:
        return {}
    if Fraction(books.received, price) < Fraction(policy["earn_threshold_bp"], 10_000):
        return {}
    reached = {
        "threshold": True,
        "contract": books.contracted,
        "contract_and_loan": books.contracted
        and (books.plan != "mortgage" or books.loan_disbursed > 0),
        "filing": books.filed,
        "delivery": books.delivered,
        "certificate": books.certified,
    }
    ledger: dict[LedgerKey, int] = {}
    for stage in policy["payout_stages"]:
        milestone = stage["milestone"]
        if not reached[milestone]:
            continue
        paid_now = price * Fraction(stage["share_bp"], 10_000)
        if books.partner:
            rate = policy["channel_rates_bp"].get(books.partner, policy["default_channel_rate_bp"])
            line = ("channel", books.partner, "channel", milestone)
            ledger[line] = math.floor(paid_now * Fraction(rate, 10_000))
        pot = paid_now * Fraction(policy["consultant_rate_bp"], 10_000)
        for role, consultant in books.roles.items():
            split = Fraction(policy["consultant_split_bp"][role], 10_000)
            ledger[("consultant", consultant, role, milestone)] = math.floor(pot * split)
    return {line: amount for line, amount in ledger.items() if amount > 0}


def step(
    deal: Deal, books: Books, rules: CommissionRules, action: str, n: int, moment: Any
) -> None:
    """Take one step on the deal; each command the deal accepts is written into the books.
    Amounts come from the books, so books that drifted from the deal show as a difference
    in the ledger."""
    price = books.price or 0
    due = max(0, price - books.received)
    part = max(1, due * n // BP)
    if action == "deposit":
        amount = 1 + n * 1_000
        deal.pay_deposit(amount, "cash", DEADLINE, rules, moment, TRACE)
        books.received += amount
    elif action == "subscribe":
        offer = max(books.received, LIST_PRICE * (5_000 + n) // BP)
        deal.sign_subscription(offer, PAYMENT_PLANS[n % 3], None, rules, moment, TRACE)
        books.subscription_price, books.plan = offer, PAYMENT_PLANS[n % 3]
    elif action == "pay":
        deal.receive_payment(part, "down_payment", rules, moment, TRACE)
        books.received += part
    elif action == "loan":
        deal.apply_loan("ICBC", part, moment, TRACE)
        books.loan_amount = part
    elif action == "approve":
        deal.approve_loan(None, moment, TRACE)
    elif action == "refuse":
        deal.refuse_loan("no", moment, TRACE)
    elif action == "disburse":
        loan = (books.loan_amount or 0) - books.loan_disbursed
        amount = max(1, min(loan, due))
        deal.receive_payment(amount, "loan_disbursement", rules, moment, TRACE)
        books.received += amount
        books.loan_disbursed += amount
    elif action == "contract":
        offer = max(books.received, price * (9_000 + n // 5) // BP)
        deal.sign_contract("HT", offer, rules, moment, TRACE)
        books.contract_price, books.contracted = offer, True
    elif action == "file":
        deal.file_contract(None, rules, moment, TRACE)
        books.filed = True
    elif action == "deliver":
        if due:
            deal.receive_payment(due, "full_payment", rules, moment, TRACE)
            books.received += due
        deal.deliver(rules, moment, TRACE)
        books.delivered = True
    elif action == "certify":
        deal.issue_certificate(None, rules, moment, TRACE)
        books.certified = True
    elif action == "cancel":
        deal.cancel("x", FAULTS[n % 3], rules, moment, TRACE)
        books.cancelled = True
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
        # A new unit means a new subscription: price, plan and loan start again.
        books.subscription_price = books.plan = books.loan_amount = None
    elif action == "reattribute":
        consultant = CONSULTANTS[n % 3]
        partner = PARTNERS[(n // 3) % 3]
        roles = {**deal.roles, "closing": consultant}
        attribution = Attribution(consultant, partner, None, "ruling", 0)
        if deal.reattribute(attribution, roles, "dispute", rules, moment, TRACE):
            books.partner, books.roles = partner, {**books.roles, "closing": consultant}
    books.notes.append(action)


@settings(max_examples=300, deadline=None)
@given(policy_rules=commission_rules(), script=scripts(), partner=st.sampled_from(PARTNERS))
def test_the_ledger_always_holds_what_the_stages_allow(
    policy_rules: tuple[dict[str, Any], CommissionRules],
    script: list[tuple[str, int]],
    partner: str | None,
) -> None:
    policy, rules = policy_rules
    roles = {"first_receiver": "cons-2", "accompanying": "cons-3", "closing": "cons-1"}
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
        roles=roles,
        commission_policy_version=0,
        at=START,
        trace=TRACE,
    )
    books = Books(partner, dict(roles))
    audit = LedgerAudit()
    moment = START
    for action, n in script:
        moment += timedelta(days=10) if action == "wait" else timedelta(hours=1)
        # When any step is taken (refused steps change nothing)
        with contextlib.suppress(DomainError):
            step(deal, books, rules, action, n, moment)
        audit.take(list(deal.collect_events()))

        # Then the ledger holds exactly what the policy's words allow, per payee and stage
        expected = reference_ledger(policy, books)
        assert audit.net() == expected, f"after {books.notes}"
        # never more than the rates allow on the price agreed
        price = books.price or 0
        channel = sum(v for k, v in expected.items() if k[0] == "channel")
        consultants = sum(v for k, v in expected.items() if k[0] == "consultant")
        rate = policy["channel_rates_bp"].get(books.partner, policy["default_channel_rate_bp"])
        assert channel <= price * rate // BP
        assert consultants <= price * policy["consultant_rate_bp"] // BP
        # and a cancelled deal holds nothing: every accrual was reversed
        if books.cancelled:
            assert audit.net() == {} and deal.commission_totals()["net_fen"] == 0
        assert deal.commission_totals()["net_fen"] == sum(expected.values())
    event(f"ended {deal.stage}, {len(audit.accruals)} accruals, {len(audit.reversed)} reversed")


def test_the_reference_reads_the_default_policy_as_the_readme_states_it() -> None:
    """The oracle itself, on numbers worked by hand from the README's defaults: 1% to the
    channel, 4‰ to the consultants split 50/30/20; stages 70/20/10 after 30% is in."""
    policy = validate_commission_settings({})
    roles = {"first_receiver": "a", "accompanying": "b", "closing": "c"}
    books = Books("p", roles, subscription_price=1_000_000, plan="mortgage", received=299_999)
    assert reference_ledger(policy, books) == {}  # 29.9999% received: nothing yet
    books.received = 300_000
    assert reference_ledger(policy, books) == {
        ("channel", "p", "channel", "threshold"): 7_000,  # 1% × 70% of 1,000,000
        ("consultant", "a", "first_receiver", "threshold"): 1_400,  # 4‰ × 50% × 70%
        ("consultant", "b", "accompanying", "threshold"): 840,
        ("consultant", "c", "closing", "threshold"): 560,
    }
    books.contract_price, books.contracted = 1_000_001, True
    assert reference_ledger(policy, books) == {}  # 300,000 is under 30% of the new price
    books.received = 300_001
    assert ("channel", "p", "channel", "contract_and_loan") not in reference_ledger(policy, books)
    books.loan_disbursed = 1
    paid = reference_ledger(policy, books)
    assert paid[("channel", "p", "channel", "contract_and_loan")] == 2_000  # 2000.002 ↓
    assert paid[("channel", "p", "channel", "threshold")] == 7_000  # 7000.007 ↓
    books.delivered = True
    # 1% and 4‰ of 1,000,001, every line rounded down: the odd fen goes to nobody
    assert sum(reference_ledger(policy, books).values()) == 10_000 + 4_000
    books.cancelled = True
    assert reference_ledger(policy, books) == {}


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
