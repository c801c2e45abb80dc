"""Given/when/then on the Deal and Unit aggregates and the client's deal guard, no database.

Amounts are fen: PRICE is 2,000,000 yuan, DEPOSIT 50,000 yuan.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.domain import Aggregate

from domain.commission import CommissionRules
from domain.deal import Attribution, Deal
from domain.errors import Conflict, DomainError, InvalidInput
from domain.unit import Unit, UnitSpec, parse_unit
from tests.support import START
from tests.unit.lifecycle_support import (
    OWNER,
    POLICY,
    SUPERVISOR,
    days,
    owned_client,
    release_by_loss,
)

TRACE: dict[str, Any] = {"actor": {"id": "fin-1", "role": "finance"}, "correlation_id": "req-deal"}
RULES = CommissionRules()  # version 0: 1% channel, 4‰ consultants, 30% threshold, 70/20/10
PRICE = 200_000_000
DEPOSIT = 5_000_000
DEADLINE = START + days(7)
ROLES = {"first_receiver": "cons-1", "accompanying": "cons-2", "closing": "cons-1"}
UNIT_A = uuid.uuid4()
UNIT_B = uuid.uuid4()


def new_events(aggregate: Aggregate) -> list[Any]:
    return list(aggregate.collect_events())


def types(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def ledger_types(events: list[Any]) -> list[str]:
    return [t for t in types(events) if t.startswith("Commission")]


def open_deal(partner_id: str | None = "partner-a") -> Deal:
    return Deal.open(
        uuid.uuid4(),
        project_id="p1",
        client_id=uuid.uuid4(),
        unit_id=UNIT_A,
        building="3栋",
        number="1201",
        list_price=210_000_000,
        attribution=Attribution("cons-1", partner_id, "report-1", "report", 4),
        roles=dict(ROLES),
        commission_policy_version=0,
        at=START,
        trace=TRACE,
    )


def new_deal(partner_id: str | None = "partner-a") -> Deal:
    deal = open_deal(partner_id)
    new_events(deal)
    return deal


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def deposited(partner_id: str | None = "partner-a") -> Deal:
    deal = new_deal(partner_id)
    deal.pay_deposit(DEPOSIT, "bank_transfer", DEADLINE, RULES, at(1), TRACE)
    new_events(deal)
    return deal


def subscribed(plan: str = "full", price: int = PRICE) -> Deal:
    deal = deposited()
    deal.sign_subscription(price, plan, None, RULES, at(2), TRACE)
    new_events(deal)
    return deal


def contracted(plan: str = "full") -> Deal:
    deal = subscribed(plan)
    deal.sign_contract("HT-2026-001", PRICE, RULES, at(3), TRACE)
    new_events(deal)
    return deal


def filed() -> Deal:
    deal = contracted()
    deal.file_contract("BA-001", RULES, at(4), TRACE)
    new_events(deal)
    return deal


def paid_in_full(deal: Deal, moment: datetime) -> None:
    deal.receive_payment(PRICE - deal.received, "full_payment", RULES, moment, TRACE)


def refused(code: str, step: Any) -> None:
    with pytest.raises(DomainError) as caught:
        step()
    assert caught.value.code == code, caught.value


# ------------------------------------------------------------------- opening


def test_a_deal_carries_the_attribution_it_was_opened_with() -> None:
    deal = Deal.open(
        uuid.uuid4(),
        project_id="p1",
        client_id=uuid.uuid4(),
        unit_id=UNIT_A,
        building="3栋",
        number="1201",
        list_price=210_000_000,
        attribution=Attribution("cons-1", "partner-a", "report-1", "report", 4),
        roles=dict(ROLES),
        commission_policy_version=2,
        at=START,
        trace=TRACE,
    )

    [opened] = new_events(deal)
    assert type(opened).__name__ == "DealOpened"
    assert (opened.consultant_id, opened.partner_id, opened.report_id) == (
        "cons-1",
        "partner-a",
        "report-1",
    )
    assert (opened.basis, opened.policy_version, opened.commission_policy_version) == (
        "report",
        4,
        2,
    )
    assert (deal.stage, deal.status, deal.stage_since) == ("opened", "open", START)


# ------------------------------------------------------------- the pipeline


def test_a_deposit_sets_the_signing_deadline_and_counts_as_received() -> None:
    deal = new_deal()

    deal.pay_deposit(DEPOSIT, "wechat_pay", DEADLINE, RULES, at(1), TRACE)

    [paid] = new_events(deal)
    assert type(paid).__name__ == "DepositPaid"
    assert (paid.amount, paid.method, paid.signing_deadline, paid.running_total) == (
        DEPOSIT,
        "wechat_pay",
        DEADLINE,
        DEPOSIT,
    )
    assert (deal.stage, deal.received, deal.stage_since) == ("deposit_paid", DEPOSIT, at(1))


def test_a_second_deposit_is_out_of_order() -> None:
    deal = deposited()
    refused("out_of_order", lambda: deal.pay_deposit(1, "cash", DEADLINE, RULES, at(2), TRACE))


def test_a_deposit_needs_a_future_deadline_and_a_positive_amount() -> None:
    deal = new_deal()
    refused("invalid_input", lambda: deal.pay_deposit(0, "cash", DEADLINE, RULES, at(1), TRACE))
    refused("invalid_input", lambda: deal.pay_deposit(9, "cash", START, RULES, at(1), TRACE))
    refused("invalid_input", lambda: deal.pay_deposit(9, "cheque", DEADLINE, RULES, at(1), TRACE))
    assert new_events(deal) == []


def test_a_subscription_before_the_deposit_is_out_of_order() -> None:
    deal = new_deal()
    refused(
        "out_of_order",
        lambda: deal.sign_subscription(PRICE, "full", None, RULES, at(1), TRACE),
    )


def test_a_subscription_records_price_and_plan_and_may_move_the_deadline() -> None:
    deal = deposited()
    later = DEADLINE + days(7)

    deal.sign_subscription(PRICE, "mortgage", later, RULES, at(2), TRACE)

    [signed] = new_events(deal)
    assert (signed.price, signed.payment_plan, signed.signing_deadline) == (
        PRICE,
        "mortgage",
        later,
    )
    assert (deal.stage, deal.agreed_price, deal.signing_deadline) == ("subscribed", PRICE, later)


def test_a_price_below_what_was_already_paid_is_refused() -> None:
    deal = deposited()
    with pytest.raises(InvalidInput) as caught:
        deal.sign_subscription(DEPOSIT - 1, "full", None, RULES, at(2), TRACE)
    assert caught.value.field == "price_fen"


def test_a_loan_needs_a_mortgage_plan() -> None:
    deal = subscribed("full")
    refused("not_mortgage", lambda: deal.apply_loan("ICBC", 1_000, at(3), TRACE))


def test_a_loan_is_applied_for_then_approved() -> None:
    deal = subscribed("mortgage")

    deal.apply_loan("ICBC", 120_000_000, at(3), TRACE)
    deal.approve_loan(None, at(4), TRACE)

    assert types(new_events(deal)) == ["LoanApplied", "LoanApproved"]
    assert (deal.loan_status, deal.loan_amount, deal.loan_bank) == (
        "approved",
        120_000_000,
        "ICBC",
    )


def test_a_refused_loan_may_be_applied_for_again() -> None:
    deal = subscribed("mortgage")
    deal.apply_loan("ICBC", 120_000_000, at(3), TRACE)
    deal.refuse_loan("income too low", at(4), TRACE)

    deal.apply_loan("CCB", 100_000_000, at(5), TRACE)

    assert types(new_events(deal)) == ["LoanApplied", "LoanRefused", "LoanApplied"]
    assert (deal.loan_status, deal.loan_bank) == ("applied", "CCB")


def test_a_bank_decision_without_an_application_is_refused() -> None:
    deal = subscribed("mortgage")
    refused("no_loan_application", lambda: deal.approve_loan(None, at(3), TRACE))
    refused("no_loan_application", lambda: deal.refuse_loan("no", at(3), TRACE))


def test_a_second_application_while_one_is_pending_is_refused() -> None:
    deal = subscribed("mortgage")
    deal.apply_loan("ICBC", 1_000_000, at(3), TRACE)
    refused("loan_applied", lambda: deal.apply_loan("CCB", 1_000_000, at(4), TRACE))


def test_a_contract_before_the_subscription_is_out_of_order() -> None:
    deal = deposited()
    refused("out_of_order", lambda: deal.sign_contract("HT-1", PRICE, RULES, at(2), TRACE))


def test_a_contract_records_its_number_and_price() -> None:
    deal = subscribed()

    deal.sign_contract("HT-2026-001", PRICE - 1_000_000, RULES, at(3), TRACE)

    [signed] = new_events(deal)
    assert (signed.contract_no, signed.price) == ("HT-2026-001", PRICE - 1_000_000)
    assert (deal.stage, deal.agreed_price) == ("contracted", PRICE - 1_000_000)


def test_a_filing_before_the_contract_is_out_of_order() -> None:
    deal = subscribed()
    refused("out_of_order", lambda: deal.file_contract(None, RULES, at(3), TRACE))


def test_a_filing_registers_the_contract() -> None:
    deal = contracted()
    deal.file_contract("BA-001", RULES, at(4), TRACE)
    assert types(new_events(deal)) == ["ContractFiled"]
    assert (deal.stage, deal.filing_no) == ("filed", "BA-001")


def test_a_payment_before_the_subscription_is_out_of_order() -> None:
    deal = deposited()
    refused("out_of_order", lambda: deal.receive_payment(1_000, "other", RULES, at(2), TRACE))


def test_payments_keep_a_running_total_and_never_pass_the_price() -> None:
    deal = subscribed()

    deal.receive_payment(55_000_000, "down_payment", RULES, at(3), TRACE)

    paid = [e for e in new_events(deal) if type(e).__name__ == "PaymentReceived"]
    assert [(p.amount, p.kind, p.running_total) for p in paid] == [
        (55_000_000, "down_payment", DEPOSIT + 55_000_000)
    ]
    rest = PRICE - deal.received
    refused("overpayment", lambda: deal.receive_payment(rest + 1, "other", RULES, at(4), TRACE))


def test_a_loan_disbursement_needs_a_contract_and_an_approved_loan_within_it() -> None:
    deal = subscribed("mortgage")
    deal.apply_loan("ICBC", 100_000_000, at(3), TRACE)
    deal.approve_loan(90_000_000, at(3), TRACE)
    refused(
        "out_of_order",
        lambda: deal.receive_payment(1_000, "loan_disbursement", RULES, at(3), TRACE),
    )
    deal.sign_contract("HT", PRICE, RULES, at(4), TRACE)
    with pytest.raises(InvalidInput):
        deal.receive_payment(90_000_001, "loan_disbursement", RULES, at(5), TRACE)
    deal.receive_payment(90_000_000, "loan_disbursement", RULES, at(5), TRACE)
    assert deal.loan_disbursed == 90_000_000


def test_delivery_needs_the_filing_and_the_whole_price() -> None:
    deal = contracted()
    refused("out_of_order", lambda: deal.deliver(RULES, at(5), TRACE))
    deal.file_contract(None, RULES, at(5), TRACE)
    refused("not_fully_paid", lambda: deal.deliver(RULES, at(6), TRACE))

    paid_in_full(deal, at(6))
    deal.deliver(RULES, at(7), TRACE)

    assert deal.stage == "delivered"


def test_the_certificate_completes_the_deal() -> None:
    deal = filed()
    refused("out_of_order", lambda: deal.issue_certificate(None, RULES, at(5), TRACE))
    paid_in_full(deal, at(5))
    deal.deliver(RULES, at(6), TRACE)

    deal.issue_certificate("CZ-9", RULES, at(7), TRACE)

    assert (deal.stage, deal.status, deal.certificate_no) == ("certified", "completed", "CZ-9")
    assert [m["stage"] for m in deal.milestones] == [
        "opened",
        "deposit_paid",
        "subscribed",
        "contracted",
        "filed",
        "delivered",
        "certified",
    ]


def test_nothing_follows_a_cancellation() -> None:
    deal = subscribed()
    deal.cancel("changed mind", "no_fault", RULES, at(3), TRACE)
    refused("deal_cancelled", lambda: deal.sign_contract("HT", PRICE, RULES, at(4), TRACE))
    refused("deal_cancelled", lambda: deal.cancel("again", "no_fault", RULES, at(4), TRACE))


def test_a_replay_of_the_events_gives_the_same_deal() -> None:
    deal = open_deal()
    deal.pay_deposit(DEPOSIT, "cash", DEADLINE, RULES, at(1), TRACE)
    deal.sign_subscription(PRICE, "mortgage", None, RULES, at(2), TRACE)
    deal.receive_payment(60_000_000, "down_payment", RULES, at(3), TRACE)

    copy = None
    for event in new_events(deal):
        copy = event.mutate(copy)

    assert isinstance(copy, Deal)
    assert (copy.stage, copy.received, copy.agreed_price, copy.stage_since) == (
        deal.stage,
        deal.received,
        deal.agreed_price,
        deal.stage_since,
    )
    assert [line.amount for line in copy.ledger] == [line.amount for line in deal.ledger]


# ------------------------------------------------------------ refund rules


def test_a_buyer_who_misses_the_signing_deadline_forfeits_the_deposit() -> None:
    deal = subscribed()
    deal.receive_payment(10_000_000, "down_payment", RULES, at(3), TRACE)

    deal.cancel("no show", "buyer_missed_deadline", RULES, DEADLINE + timedelta(seconds=1), TRACE)

    [cancelled] = [e for e in new_events(deal) if type(e).__name__ == "DealCancelled"]
    assert (cancelled.forfeited, cancelled.refund) == (DEPOSIT, 10_000_000)
    assert cancelled.refund_due_by == DEADLINE + timedelta(seconds=1) + days(15)
    assert (deal.stage, deal.status) == ("cancelled", "cancelled")


def test_the_deposit_is_not_forfeited_before_the_deadline_passes() -> None:
    deal = subscribed()
    refused(
        "deadline_not_passed",
        lambda: deal.cancel("x", "buyer_missed_deadline", RULES, DEADLINE, TRACE),
    )


def test_the_deposit_is_not_forfeited_once_the_contract_is_signed() -> None:
    deal = contracted()
    refused(
        "deadline_not_passed",
        lambda: deal.cancel("x", "buyer_missed_deadline", RULES, DEADLINE + days(1), TRACE),
    )


def test_a_no_fault_failure_refunds_everything() -> None:
    deal = contracted("mortgage")
    deal.receive_payment(60_000_000, "down_payment", RULES, at(4), TRACE)

    deal.cancel("loan refused twice", "no_fault", RULES, at(5), TRACE)

    assert deal.cancellation is not None
    assert (deal.cancellation["refund_fen"], deal.cancellation["forfeited_fen"]) == (
        DEPOSIT + 60_000_000,
        0,
    )


def test_a_developer_at_fault_refunds_the_deposit_twice() -> None:
    deal = subscribed()
    deal.receive_payment(10_000_000, "down_payment", RULES, at(3), TRACE)

    deal.cancel("unit resold", "developer_fault", RULES, at(4), TRACE)

    assert deal.cancellation is not None
    assert deal.cancellation["refund_fen"] == 2 * DEPOSIT + 10_000_000
    assert deal.cancellation["forfeited_fen"] == 0


def test_a_delivered_deal_cannot_be_cancelled() -> None:
    deal = filed()
    paid_in_full(deal, at(5))
    deal.deliver(RULES, at(6), TRACE)
    refused("out_of_order", lambda: deal.cancel("x", "no_fault", RULES, at(7), TRACE))


# ------------------------------------------------------------- swap, rename


def test_a_swap_moves_to_the_new_unit_and_carries_the_money_over() -> None:
    deal = subscribed()
    deal.receive_payment(20_000_000, "down_payment", RULES, at(3), TRACE)
    new_events(deal)

    deal.swap_unit(
        unit_id=UNIT_B,
        building="5栋",
        number="0802",
        list_price=190_000_000,
        reason="wants a lower floor",
        rules=RULES,
        at=at(4),
        trace=TRACE,
    )

    swapped = next(e for e in new_events(deal) if type(e).__name__ == "UnitSwapped")
    assert (swapped.previous_unit_id, swapped.unit_id) == (UNIT_A, UNIT_B)
    assert (swapped.carried_deposit, swapped.carried_received) == (DEPOSIT, DEPOSIT + 20_000_000)
    assert (swapped.previous_stage, swapped.stage) == ("subscribed", "deposit_paid")
    # The subscription is signed again, for the new unit at its price
    assert (deal.unit_id, deal.number, deal.agreed_price) == (UNIT_B, "0802", None)
    deal.sign_subscription(185_000_000, "full", None, RULES, at(5), TRACE)
    assert deal.received == DEPOSIT + 20_000_000


def test_a_swap_after_the_contract_or_to_the_same_unit_is_refused() -> None:
    deal = subscribed()
    with pytest.raises(InvalidInput):
        deal.swap_unit(
            unit_id=UNIT_A,
            building="3栋",
            number="1201",
            list_price=1,
            reason="x",
            rules=RULES,
            at=at(3),
            trace=TRACE,
        )
    deal.sign_contract("HT", PRICE, RULES, at(3), TRACE)
    refused(
        "out_of_order",
        lambda: deal.swap_unit(
            unit_id=UNIT_B,
            building="5栋",
            number="0802",
            list_price=1,
            reason="x",
            rules=RULES,
            at=at(4),
            trace=TRACE,
        ),
    )


def test_a_rename_before_the_contract_seals_the_new_name() -> None:
    deal = subscribed()
    deal.rename_buyer("sealed-new-name", "spouse buys", at(3), TRACE)
    [renamed] = new_events(deal)
    assert (type(renamed).__name__, renamed.pii) == ("BuyerRenamed", "sealed-new-name")
    assert deal.buyer_pii == "sealed-new-name"


def test_a_rename_after_the_contract_is_out_of_order() -> None:
    deal = contracted()
    refused("out_of_order", lambda: deal.rename_buyer("sealed", "x", at(4), TRACE))


# ---------------------------------------------------------------- commission


def test_nothing_is_earned_before_thirty_percent_of_the_price_is_received() -> None:
    deal = subscribed()
    deal.receive_payment(PRICE * 3 // 10 - DEPOSIT - 1, "down_payment", RULES, at(3), TRACE)
    assert ledger_types(new_events(deal)) == []

    deal.receive_payment(1, "down_payment", RULES, at(4), TRACE)

    accrued = [e for e in new_events(deal) if type(e).__name__ == "CommissionAccrued"]
    by_payee = {(e.payee_id, e.role): e.amount for e in accrued}
    assert {e.milestone for e in accrued} == {"threshold"}
    assert by_payee == {
        ("partner-a", "channel"): PRICE * 100 * 7000 // 10_000**2,  # 1% × 70%
        ("cons-1", "first_receiver"): PRICE * 40 * 5000 * 7000 // 10_000**3,
        ("cons-2", "accompanying"): PRICE * 40 * 3000 * 7000 // 10_000**3,
        ("cons-1", "closing"): PRICE * 40 * 2000 * 7000 // 10_000**3,
    }


def test_a_disbursement_without_an_approved_loan_is_refused() -> None:
    deal = contracted("mortgage")
    refused(
        "loan_not_approved",
        lambda: deal.receive_payment(1_000, "loan_disbursement", RULES, at(4), TRACE),
    )


def test_the_contract_stage_waits_for_the_loan_on_a_mortgage() -> None:
    deal = contracted("mortgage")
    deal.receive_payment(60_000_000, "down_payment", RULES, at(4), TRACE)
    assert {e.milestone for e in new_events(deal) if hasattr(e, "milestone")} == {"threshold"}
    deal.apply_loan("ICBC", PRICE - deal.received, at(5), TRACE)
    deal.approve_loan(None, at(6), TRACE)
    assert ledger_types(new_events(deal)) == []

    deal.receive_payment(PRICE - deal.received, "loan_disbursement", RULES, at(7), TRACE)

    stages = {e.milestone for e in new_events(deal) if type(e).__name__ == "CommissionAccrued"}
    assert stages == {"contract_and_loan"}


def test_a_walk_in_deal_pays_no_channel() -> None:
    deal = deposited(partner_id=None)
    deal.sign_subscription(PRICE, "full", None, RULES, at(2), TRACE)
    paid_in_full(deal, at(3))
    assert {line.payee_kind for line in deal.ledger} == {"consultant"}


def test_a_cancellation_reverses_exactly_what_was_accrued() -> None:
    deal = contracted()
    paid_in_full(deal, at(4))
    accrued = {line.entry_id: line for line in deal.ledger if line.kind == "accrued"}
    assert accrued
    new_events(deal)

    deal.cancel("buyer withdrew", "no_fault", RULES, at(5), TRACE)

    reversals = [e for e in new_events(deal) if type(e).__name__ == "CommissionReversed"]
    assert sorted(r.reverses for r in reversals) == sorted(accrued)
    for r in reversals:
        original = accrued[r.reverses]
        assert (r.amount, r.payee_id, r.role, r.milestone) == (
            original.amount,
            original.payee_id,
            original.role,
            original.milestone,
        )
    assert deal.commission_totals()["net_fen"] == 0


def test_a_lower_contract_price_reverses_and_books_again() -> None:
    deal = subscribed()
    deal.receive_payment(60_000_000, "down_payment", RULES, at(3), TRACE)
    before = {line.key: line.amount for line in deal.ledger}
    new_events(deal)

    deal.sign_contract("HT", PRICE // 2, RULES, at(4), TRACE)

    events = new_events(deal)
    reversed_ = [e for e in events if type(e).__name__ == "CommissionReversed"]
    assert len(reversed_) == len(before)
    open_now = {line.key: line.amount for line in deal.ledger if line.kind == "accrued"}
    channel = ("channel", "partner-a", "channel", "threshold")
    assert before[channel] == PRICE * 100 * 7000 // 10_000**2
    assert deal.commission_totals()["net_fen"] < sum(before.values())
    assert open_now  # the halved amounts are booked again


def test_a_ruling_that_moves_the_channel_reverses_the_old_and_accrues_the_new() -> None:
    deal = contracted()
    deal.receive_payment(60_000_000, "down_payment", RULES, at(4), TRACE)
    old = [line for line in deal.ledger if line.payee_id == "partner-a"]
    new_events(deal)

    moved = deal.reattribute(
        Attribution("cons-3", "partner-b", "report-2", "ruling", 4),
        {"first_receiver": "cons-3", "accompanying": "cons-2", "closing": "cons-3"},
        "dispute-1",
        RULES,
        at(5),
        TRACE,
    )

    assert moved
    events = new_events(deal)
    assert types(events)[0] == "DealReattributed"
    reversed_ids = {e.reverses for e in events if type(e).__name__ == "CommissionReversed"}
    assert {line.entry_id for line in old} <= reversed_ids
    payees = {(e.payee_id, e.role) for e in events if type(e).__name__ == "CommissionAccrued"}
    assert ("partner-b", "channel") in payees and ("cons-3", "closing") in payees
    # The accompanying consultant was not the one ruled against: untouched
    assert not any(e.payee_id == "cons-2" for e in events if hasattr(e, "payee_id"))


def test_a_cancelled_deal_does_not_follow_a_ruling() -> None:
    deal = subscribed()
    deal.cancel("x", "no_fault", RULES, at(3), TRACE)
    new_events(deal)
    moved = deal.reattribute(
        Attribution("cons-3", "partner-b", None, "ruling", 4), ROLES, "d", RULES, at(4), TRACE
    )
    assert not moved and new_events(deal) == []


# --------------------------------------------------------------------- units


def spec(number: str = "1201", price: int = 210_000_000) -> UnitSpec:
    return UnitSpec("3栋", number, 3, Decimal("89.50"), 12, "south", price)


def test_a_held_unit_cannot_be_held_by_another_deal() -> None:
    unit = Unit.create_listing("p1", spec(), START, TRACE)
    first, second = uuid.uuid4(), uuid.uuid4()
    unit.hold(first, uuid.uuid4(), at(1), TRACE)

    refused("unit_unavailable", lambda: unit.hold(second, uuid.uuid4(), at(2), TRACE))

    unit.release(first, "cancelled", at(3), TRACE)
    unit.hold(second, uuid.uuid4(), at(4), TRACE)
    assert (unit.status, unit.deal_id) == ("held", second)


def test_a_unit_moves_only_for_the_deal_that_holds_it() -> None:
    unit = Unit.create_listing("p1", spec(), START, TRACE)
    deal_id = uuid.uuid4()
    unit.hold(deal_id, uuid.uuid4(), at(1), TRACE)
    refused("unit_not_held", lambda: unit.subscribe(uuid.uuid4(), at(2), TRACE))
    unit.subscribe(deal_id, at(2), TRACE)
    unit.contract(deal_id, PRICE, at(3), TRACE)
    unit.sell(deal_id, at(4), TRACE)
    assert unit.status == "sold"
    refused("unit_not_held", lambda: unit.sell(deal_id, at(5), TRACE))


def test_a_reimport_revises_an_available_unit_but_not_a_held_one() -> None:
    unit = Unit.create_listing("p1", spec(), START, TRACE)
    new_events(unit)
    assert not unit.revise(spec(), at(1), TRACE)
    assert unit.revise(spec(price=200_000_000), at(1), TRACE)
    unit.hold(uuid.uuid4(), uuid.uuid4(), at(2), TRACE)
    refused("unit_unavailable", lambda: unit.revise(spec(price=1), at(3), TRACE))


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"area": None}, "area"),
        ({"area": "89.505"}, "area"),
        ({"orientation": "up"}, "orientation"),
        ({"building": "3:栋"}, "building"),
        ({"rooms": "three"}, "rooms"),
        ({"floor": "1.5"}, "floor"),
        ({"list_price": "12.345"}, "list_price"),
        ({"list_price": None, "list_price_fen": "0"}, "list_price_fen"),
    ],
)
def test_an_import_row_names_the_field_it_breaks(row: dict[str, Any], field: str) -> None:
    good = {
        "building": "3栋",
        "number": "1201",
        "rooms": "3",
        "area": "89.50",
        "floor": "12",
        "orientation": "south",
        "list_price": "2350000.5",
    }
    assert parse_unit(good).list_price == 235_000_050
    with pytest.raises(InvalidInput) as caught:
        parse_unit({k: v for k, v in {**good, **row}.items() if v is not None})
    assert caught.value.field == field


# ----------------------------------------------------- the client in a deal


def in_deal(client: Any, status: str = "open") -> None:
    client.record_deal_milestone(
        deal_id=uuid.uuid4(),
        unit_id=UNIT_A,
        milestone="opened" if status == "open" else status,
        deal_status=status,
        amount=None,
        at=at(1),
        trace=TRACE,
    )
    new_events(client)


def test_a_buyer_in_a_deal_is_not_released_by_the_clock() -> None:
    client = owned_client()
    in_deal(client)

    later = START + days(365)
    assert client.expire_protection(None, POLICY, later, TRACE) is False
    assert client.release_inactive(None, POLICY, later, TRACE) is False
    assert new_events(client) == []
    assert client.owner is not None and client.owner.consultant_id == OWNER.id


def test_a_buyer_in_a_deal_cannot_be_lost_or_sent_away_by_a_departure() -> None:
    client = owned_client()
    in_deal(client)
    refused(
        "client_in_deal",
        lambda: client.request_loss(OWNER, "r1", "price", "sealed", at(2), TRACE),
    )
    assert client.depart(OWNER.id, None, POLICY, at(2), TRACE) is False
    # A successor still takes over
    assert client.depart(OWNER.id, "cons-9", POLICY, at(3), TRACE) is True


def test_a_completed_deal_still_keeps_the_buyer() -> None:
    client = owned_client()
    in_deal(client, "completed")
    assert client.expire_protection(None, POLICY, START + days(365), TRACE) is False


def test_a_cancelled_deal_lets_the_clock_act_again() -> None:
    client = owned_client()
    deal_id = uuid.uuid4()
    for status in ("open", "cancelled"):
        client.record_deal_milestone(
            deal_id=deal_id,
            unit_id=UNIT_A,
            milestone=status,
            deal_status=status,
            amount=None,
            at=at(1),
            trace=TRACE,
        )
    new_events(client)
    assert client.expire_protection(None, POLICY, START + days(365), TRACE) is True
    assert client.in_pool


def test_a_buyer_in_the_pool_with_a_deal_cannot_be_claimed() -> None:
    # Given a buyer released to the pool, then (a deal opened for them elsewhere)
    client = owned_client()
    release_by_loss(client, at(1))
    in_deal(client)
    with pytest.raises(Conflict) as caught:
        client.claim("claim-1", "cons-2", SUPERVISOR.id, POLICY, at(2), TRACE)
    assert caught.value.code == "client_in_deal"
