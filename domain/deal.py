"""Deals (成交): one buyer and one unit, from deposit (定金) to property certificate (产证).

定金 → 认购 → (按揭) → 签约 → 备案 → 回款 → 交房 → 产证, with cancellation (退房), unit swap
(换房) and buyer rename (更名) on the way. A deal carries the client's attribution as it
stood at opening (consultant, partner, report, basis, policy version); only a dispute
ruling moves it afterwards. The commission ledger (domain.deal_ledger) lives in this
stream too, so every accrual and reversal is written in the transaction of the fact
that caused it.

Deposit rules (domain.md): a buyer who misses the signing deadline forfeits the deposit;
a failure that is nobody's fault refunds everything; a developer at fault (e.g. resold
the unit) refunds the deposit twice (定金双倍返还). Refunds are due within 15 days.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate

from domain.commission import CommissionRules, Payees, Progress
from domain.deal_ledger import CommissionLedger
from domain.errors import Conflict, InvalidInput
from domain.sealing import Sealer
from domain.vocabulary import DEAL_STAGES, DEPOSIT_METHODS, FAULTS, PAYMENT_KINDS, PAYMENT_PLANS

_ORDER: dict[str, int] = {stage: i for i, stage in enumerate(DEAL_STAGES)}
BEFORE_CONTRACT = ("opened", "deposit_paid", "subscribed")
CANCELLABLE = ("opened", "deposit_paid", "subscribed", "contracted", "filed")
AWAITING_SIGNATURE = ("deposit_paid", "subscribed")  # the signing deadline runs
REFUND_WITHIN = timedelta(days=15)
MAX_FEN = 10**13


@dataclass(frozen=True)
class Attribution:
    """Who brought and who serves the buyer, as the deal counts it."""

    consultant_id: str
    partner_id: str | None
    report_id: str | None
    basis: str
    policy_version: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def refund_for(fault: str, deposit: int, received: int) -> tuple[int, int]:
    """(refund, forfeited) for a cancellation: ``received`` includes the deposit."""
    if fault == "buyer_missed_deadline":
        return received - deposit, deposit
    if fault == "developer_fault":
        return received + deposit, 0
    return received, 0


def check_amount(amount: int, field: str) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_FEN:
        raise InvalidInput(field, "must be a positive whole number of fen (1 yuan = 100 fen)")
    return amount


def _choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise InvalidInput(field, f"must be one of {', '.join(allowed)}")
    return value


def _label(value: str, field: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 64:
        raise InvalidInput(field, "must be 1-64 characters")
    return value.strip()


def _document(value: str | None, field: str, seal: Sealer | None) -> dict[str, Any]:
    """An event's document label and its token: sealed (the field left empty) when the
    caller gives a sealer, in clear otherwise; absent stays None."""
    if value is None:
        return {field: None, "sealed": ""}
    label = _label(value, field)
    if seal is None:
        return {field: label, "sealed": ""}
    return {field: "", "sealed": seal({field: label})}


class Deal(CommissionLedger):
    class Event(Aggregate.Event):
        actor: dict[str, str]
        correlation_id: str

    class DealOpened(Aggregate.Created):
        project_id: str
        client_id: uuid.UUID
        unit_id: uuid.UUID
        building: str
        number: str
        list_price: int
        consultant_id: str
        partner_id: str | None
        report_id: str | None
        basis: str
        policy_version: int
        roles: dict[str, str]
        commission_policy_version: int

    class DepositPaid(Aggregate.Event):
        amount: int
        method: str
        signing_deadline: datetime
        running_total: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.deposit, aggregate.deposit_method = self.amount, self.method
            aggregate.signing_deadline = self.signing_deadline
            aggregate.received = self.running_total
            aggregate.enter("deposit_paid", self.timestamp)

    class SubscriptionSigned(Aggregate.Event):
        price: int
        payment_plan: str
        signing_deadline: datetime | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.price, aggregate.payment_plan = self.price, self.payment_plan
            aggregate.signing_deadline = self.signing_deadline or aggregate.signing_deadline
            aggregate.enter("subscribed", self.timestamp)

    class LoanApplied(Aggregate.Event):
        bank: str
        amount: int
        sealed: str = ""  # the bank, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.loan_status, aggregate.loan_bank = "applied", self.bank
            aggregate.loan_amount = self.amount
            aggregate.keep_sealed("loan_bank", self.sealed)

    class LoanApproved(Aggregate.Event):
        amount: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.loan_status, aggregate.loan_amount = "approved", self.amount

    class LoanRefused(Aggregate.Event):
        reason: str
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.loan_status = "refused"

    class ContractSigned(Aggregate.Event):
        contract_no: str
        price: int
        sealed: str = ""  # the contract number, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.keep_sealed("contract_no", self.sealed)
            aggregate.contract_no, aggregate.contract_price = self.contract_no, self.price
            aggregate.enter("contracted", self.timestamp)

    class ContractFiled(Aggregate.Event):
        filing_no: str | None
        sealed: str = ""  # the filing number, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.keep_sealed("filing_no", self.sealed)
            aggregate.filing_no = self.filing_no
            aggregate.enter("filed", self.timestamp)

    class PaymentReceived(Aggregate.Event):
        amount: int
        kind: str
        running_total: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.received = self.running_total
            if self.kind == "loan_disbursement":
                aggregate.loan_disbursed += self.amount

    class UnitDelivered(Aggregate.Event):
        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.enter("delivered", self.timestamp)

    class CertificateIssued(Aggregate.Event):
        certificate_no: str | None
        sealed: str = ""  # the certificate number, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.keep_sealed("certificate_no", self.sealed)
            aggregate.certificate_no = self.certificate_no
            aggregate.enter("certified", self.timestamp)

    class DealCancelled(Aggregate.Event):
        reason: str
        fault: str
        previous_stage: str
        deposit: int
        received: int
        refund: int
        forfeited: int
        refund_due_by: datetime
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            if self.sealed:
                aggregate.sealed_texts["cancellation"] = self.sealed
            aggregate.cancellation = {
                "reason": self.reason,
                "fault": self.fault,
                "previous_stage": self.previous_stage,
                "refund_fen": self.refund,
                "forfeited_fen": self.forfeited,
                "refund_due_by": self.refund_due_by,
                "cancelled_at": self.timestamp,
            }
            aggregate.enter("cancelled", self.timestamp)

    class UnitSwapped(Aggregate.Event):
        """换房: the old unit is let go and the new one held; money paid carries over, and
        the subscription is signed again for the new unit at its price."""

        previous_unit_id: uuid.UUID
        unit_id: uuid.UUID
        building: str
        number: str
        list_price: int
        reason: str
        previous_stage: str
        stage: str
        carried_deposit: int
        carried_received: int
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            if self.sealed:
                aggregate.sealed_texts[f"swap:{len(aggregate.swaps)}"] = self.sealed
            aggregate.swaps.append(
                {
                    "from_unit_id": self.previous_unit_id,
                    "to_unit_id": self.unit_id,
                    "reason": self.reason,
                    "at": self.timestamp,
                }
            )
            aggregate.unit_id, aggregate.building = self.unit_id, self.building
            aggregate.number, aggregate.list_price = self.number, self.list_price
            aggregate.price = aggregate.payment_plan = None
            aggregate.loan_status, aggregate.loan_bank, aggregate.loan_amount = "none", None, None
            aggregate.keep_sealed("loan_bank", "")
            aggregate.enter(self.stage, self.timestamp)

    class BuyerRenamed(Aggregate.Event):
        """更名: the buyer's name on the deal, sealed like all personal data."""

        pii: str
        reason: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.buyer_pii = self.pii

    class NegotiationEscalated(Aggregate.Event):
        """The deal sat in deposit or subscription (谈判) without a contract for the
        policy's ``negotiation_escalation``: the project manager is asked to step in."""

        client_id: uuid.UUID
        project_id: str
        consultant_id: str
        stage: str
        since: datetime
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.negotiation_escalated = True

    class DealReattributed(Aggregate.Event):
        """A dispute ruling moved the client's attribution; commission follows it."""

        consultant_id: str
        partner_id: str | None
        report_id: str | None
        basis: str
        policy_version: int
        roles: dict[str, str]
        previous: dict[str, Any]
        dispute_id: str | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Deal)
            aggregate.attribution = Attribution(
                self.consultant_id, self.partner_id, self.report_id, self.basis, self.policy_version
            )
            aggregate.roles = dict(self.roles)

    # ------------------------------------------------------------------- state

    def __init__(
        self,
        project_id: str,
        client_id: uuid.UUID,
        unit_id: uuid.UUID,
        building: str,
        number: str,
        list_price: int,
        consultant_id: str,
        partner_id: str | None,
        report_id: str | None,
        basis: str,
        policy_version: int,
        roles: dict[str, str],
        commission_policy_version: int,
        timestamp: datetime,
    ) -> None:
        self.project_id = project_id
        self.client_id = client_id
        self.unit_id = unit_id
        self.building = building
        self.number = number
        self.list_price = list_price
        self.attribution = Attribution(consultant_id, partner_id, report_id, basis, policy_version)
        self.opened_attribution = self.attribution
        self.roles = dict(roles)
        self.commission_policy_version = commission_policy_version
        self.stage = "opened"
        self.stage_since = timestamp
        self.milestones: list[dict[str, Any]] = [{"stage": "opened", "at": timestamp}]
        self.deposit = 0
        self.deposit_method: str | None = None
        self.signing_deadline: datetime | None = None
        self.price: int | None = None
        self.payment_plan: str | None = None
        self.loan_status = "none"  # none | applied | approved | refused
        self.loan_bank: str | None = None
        self.loan_amount: int | None = None
        self.loan_disbursed = 0
        self.contract_no: str | None = None
        self.contract_price: int | None = None
        self.filing_no: str | None = None
        self.certificate_no: str | None = None
        self.received = 0
        self.cancellation: dict[str, Any] | None = None
        self.swaps: list[dict[str, Any]] = []
        self.buyer_pii: str | None = None
        # Free text as vault tokens by place ("cancellation", "swap:<n>"); domain.sealing.
        self.sealed_texts: dict[str, str] = {}
        self.negotiation_escalated = False
        super().__init__()  # the commission ledger

    def keep_sealed(self, place: str, token: str) -> None:
        if token:
            self.sealed_texts[place] = token
        else:
            self.sealed_texts.pop(place, None)

    def enter(self, stage: str, at: datetime) -> None:
        self.stage, self.stage_since = stage, at
        self.milestones.append({"stage": stage, "at": at})

    @classmethod
    def open(
        cls,
        deal_id: uuid.UUID,
        *,
        project_id: str,
        client_id: uuid.UUID,
        unit_id: uuid.UUID,
        building: str,
        number: str,
        list_price: int,
        attribution: Attribution,
        roles: dict[str, str],
        commission_policy_version: int,
        at: datetime,
        trace: dict[str, Any],
    ) -> Deal:
        return cls._create(
            cls.DealOpened,
            id=deal_id,
            project_id=project_id,
            client_id=client_id,
            unit_id=unit_id,
            building=building,
            number=number,
            list_price=list_price,
            **attribution.as_dict(),
            roles=roles,
            commission_policy_version=commission_policy_version,
            timestamp=at,
            **trace,
        )

    @property
    def status(self) -> str:
        if self.stage == "cancelled":
            return "cancelled"
        return "completed" if self.stage == "certified" else "open"

    @property
    def agreed_price(self) -> int | None:
        """The contract price once signed, else the subscription price."""
        return self.contract_price if self.contract_price is not None else self.price

    def reached(self, stage: str) -> bool:
        return self.stage != "cancelled" and _ORDER[self.stage] >= _ORDER[stage]

    def signing_overdue(self, now: datetime) -> bool:
        deadline = self.signing_deadline
        return self.stage in AWAITING_SIGNATURE and deadline is not None and now > deadline

    @property
    def negotiation_since(self) -> datetime | None:
        """When negotiation began: the deposit (定金); a swap does not restart it."""
        return next((m["at"] for m in self.milestones if m["stage"] == "deposit_paid"), None)

    def escalate_negotiation(
        self, after: timedelta, policy_version: int, at: datetime, trace: dict[str, Any]
    ) -> bool:
        """Ask the manager in, once per deal, when no contract came ``after`` the deposit."""
        since = self.negotiation_since
        if self.stage not in AWAITING_SIGNATURE or since is None or self.negotiation_escalated:
            return False
        if at < since + after:
            return False
        self.trigger_event(
            self.NegotiationEscalated,
            client_id=self.client_id,
            project_id=self.project_id,
            consultant_id=self.attribution.consultant_id,
            stage=self.stage,
            since=since,
            policy_version=policy_version,
            timestamp=at,
            **trace,
        )
        return True

    def progress(self) -> Progress:
        return Progress(
            price=self.agreed_price,
            received=self.received,
            contract=self.reached("contracted"),
            loan_settled=self.payment_plan != "mortgage" or self.loan_disbursed > 0,
            filed=self.reached("filed"),
            delivered=self.reached("delivered"),
            certified=self.reached("certified"),
            live=self.stage != "cancelled",
        )

    def payees(self) -> Payees:
        return Payees(self.attribution.partner_id, dict(self.roles))

    # ------------------------------------------------------------------ guards

    def _require_stage(self, step: str, *stages: str) -> None:
        if self.stage in stages:
            return
        if self.stage == "cancelled":
            raise Conflict(f"cannot record {step}: the deal was cancelled", code="deal_cancelled")
        raise Conflict(
            f"cannot record {step} while the deal is {self.stage}; "
            f"it needs the deal to be {' or '.join(stages)}",
            code="out_of_order",
        )

    def _require_price_covers(self, price: int, field: str) -> None:
        if price < self.received:
            raise InvalidInput(field, f"must not be below the {self.received} fen already received")

    # ---------------------------------------------------------------- commands

    def pay_deposit(
        self,
        amount: int,
        method: str,
        signing_deadline: datetime,
        rules: CommissionRules,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self._require_stage("a deposit", "opened")
        check_amount(amount, "amount_fen")
        _choice(method, DEPOSIT_METHODS, "method")
        if signing_deadline <= at:
            raise InvalidInput("signing_deadline", "must be in the future")
        self.trigger_event(
            self.DepositPaid,
            amount=amount,
            method=method,
            signing_deadline=signing_deadline,
            running_total=self.received + amount,
            timestamp=at,
            **trace,
        )
        self._settle(rules, "deposit_paid", at, trace)

    def sign_subscription(
        self,
        price: int,
        payment_plan: str,
        signing_deadline: datetime | None,
        rules: CommissionRules,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self._require_stage("a subscription (认购)", "deposit_paid")
        check_amount(price, "price_fen")
        self._require_price_covers(price, "price_fen")
        _choice(payment_plan, PAYMENT_PLANS, "payment_plan")
        if signing_deadline is not None and signing_deadline <= at:
            raise InvalidInput("signing_deadline", "must be in the future")
        self.trigger_event(
            self.SubscriptionSigned,
            price=price,
            payment_plan=payment_plan,
            signing_deadline=signing_deadline,
            timestamp=at,
            **trace,
        )
        self._settle(rules, "subscription_signed", at, trace)

    def apply_loan(
        self,
        bank: str,
        amount: int,
        at: datetime,
        trace: dict[str, Any],
        seal: Sealer | None = None,
    ) -> None:
        self._require_stage("a loan application", "subscribed", "contracted", "filed")
        if self.payment_plan != "mortgage":
            raise Conflict(
                f"the payment plan is {self.payment_plan}, not mortgage", code="not_mortgage"
            )
        if self.loan_status in ("applied", "approved"):
            raise Conflict(f"a loan is already {self.loan_status}", code=f"loan_{self.loan_status}")
        check_amount(amount, "amount_fen")
        if amount > (self.agreed_price or 0) - self.received:
            raise InvalidInput("amount_fen", "must not exceed the price still to be paid")
        self.trigger_event(
            self.LoanApplied,
            **_document(bank, "bank", seal),
            amount=amount,
            timestamp=at,
            **trace,
        )

    def _require_loan_applied(self) -> int:
        if self.loan_status != "applied" or self.loan_amount is None:
            raise Conflict(
                f"no loan application is waiting (the loan is {self.loan_status})",
                code="no_loan_application",
            )
        return self.loan_amount

    def approve_loan(self, amount: int | None, at: datetime, trace: dict[str, Any]) -> None:
        self._require_stage("a loan approval", "subscribed", "contracted", "filed")
        applied = self._require_loan_applied()
        approved = applied if amount is None else check_amount(amount, "amount_fen")
        if approved > applied:
            raise InvalidInput("amount_fen", "must not exceed the amount applied for")
        self.trigger_event(self.LoanApproved, amount=approved, timestamp=at, **trace)

    def refuse_loan(
        self, reason: str, at: datetime, trace: dict[str, Any], sealed: str = ""
    ) -> None:
        self._require_stage("a loan refusal", "subscribed", "contracted", "filed")
        self._require_loan_applied()
        self.trigger_event(self.LoanRefused, reason=reason, sealed=sealed, timestamp=at, **trace)

    def sign_contract(
        self,
        contract_no: str,
        price: int,
        rules: CommissionRules,
        at: datetime,
        trace: dict[str, Any],
        seal: Sealer | None = None,
    ) -> None:
        self._require_stage("a contract (签约)", "subscribed")
        check_amount(price, "price_fen")
        self._require_price_covers(price, "price_fen")
        self.trigger_event(
            self.ContractSigned,
            **_document(contract_no, "contract_no", seal),
            price=price,
            timestamp=at,
            **trace,
        )
        self._settle(rules, "contract_signed", at, trace)

    def file_contract(
        self,
        filing_no: str | None,
        rules: CommissionRules,
        at: datetime,
        trace: dict[str, Any],
        seal: Sealer | None = None,
    ) -> None:
        self._require_stage("a filing (备案)", "contracted")
        number = _document(filing_no, "filing_no", seal)
        self.trigger_event(self.ContractFiled, **number, timestamp=at, **trace)
        self._settle(rules, "contract_filed", at, trace)

    def receive_payment(
        self,
        amount: int,
        kind: str,
        rules: CommissionRules,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self._require_stage(
            "a payment (回款)", "subscribed", "contracted", "filed", "delivered", "certified"
        )
        check_amount(amount, "amount_fen")
        _choice(kind, PAYMENT_KINDS, "kind")
        price = self.agreed_price or 0
        if self.received + amount > price:
            raise Conflict(
                f"{amount} fen would take the total past the price ({price - self.received} "
                "fen are still due)",
                code="overpayment",
            )
        if kind == "loan_disbursement":
            if not self.reached("contracted"):
                raise Conflict(
                    "a loan is disbursed (放款) only on a signed contract", code="out_of_order"
                )
            if self.loan_status != "approved" or self.loan_amount is None:
                raise Conflict("no approved loan to disburse", code="loan_not_approved")
            if self.loan_disbursed + amount > self.loan_amount:
                raise InvalidInput("amount_fen", "must not exceed the approved loan")
        self.trigger_event(
            self.PaymentReceived,
            amount=amount,
            kind=kind,
            running_total=self.received + amount,
            timestamp=at,
            **trace,
        )
        self._settle(rules, "payment_received", at, trace)

    def deliver(self, rules: CommissionRules, at: datetime, trace: dict[str, Any]) -> None:
        self._require_stage("a delivery (交房)", "filed")
        price = self.agreed_price or 0
        if self.received < price:
            raise Conflict(
                f"{price - self.received} fen of the price are still due", code="not_fully_paid"
            )
        self.trigger_event(self.UnitDelivered, timestamp=at, **trace)
        self._settle(rules, "unit_delivered", at, trace)

    def issue_certificate(
        self,
        certificate_no: str | None,
        rules: CommissionRules,
        at: datetime,
        trace: dict[str, Any],
        seal: Sealer | None = None,
    ) -> None:
        self._require_stage("a property certificate (产证)", "delivered")
        number = _document(certificate_no, "certificate_no", seal)
        self.trigger_event(self.CertificateIssued, **number, timestamp=at, **trace)
        self._settle(rules, "certificate_issued", at, trace)

    def cancel(
        self,
        reason: str,
        fault: str,
        rules: CommissionRules,
        at: datetime,
        trace: dict[str, Any],
        sealed: str = "",
    ) -> None:
        self._require_stage("a cancellation (退房)", *CANCELLABLE)
        _choice(fault, FAULTS, "fault")
        if fault == "buyer_missed_deadline" and not self.signing_overdue(at):
            raise Conflict(
                "the deposit is forfeited only once the signing deadline has passed unsigned",
                code="deadline_not_passed",
            )
        refund, forfeited = refund_for(fault, self.deposit, self.received)
        self.trigger_event(
            self.DealCancelled,
            reason=reason,
            fault=fault,
            previous_stage=self.stage,
            deposit=self.deposit,
            received=self.received,
            refund=refund,
            forfeited=forfeited,
            refund_due_by=at + REFUND_WITHIN,
            sealed=sealed,
            timestamp=at,
            **trace,
        )
        self._settle(rules, "cancelled", at, trace)

    def swap_unit(
        self,
        *,
        unit_id: uuid.UUID,
        building: str,
        number: str,
        list_price: int,
        reason: str,
        rules: CommissionRules,
        at: datetime,
        trace: dict[str, Any],
        sealed: str = "",
    ) -> None:
        self._require_stage("a unit swap (换房)", *BEFORE_CONTRACT)
        if unit_id == self.unit_id:
            raise InvalidInput("unit_id", "is already this deal's unit")
        self.trigger_event(
            self.UnitSwapped,
            previous_unit_id=self.unit_id,
            unit_id=unit_id,
            building=building,
            number=number,
            list_price=list_price,
            reason=reason,
            previous_stage=self.stage,
            stage="deposit_paid" if self.deposit else "opened",
            carried_deposit=self.deposit,
            carried_received=self.received,
            sealed=sealed,
            timestamp=at,
            **trace,
        )
        self._settle(rules, "unit_swapped", at, trace)

    def rename_buyer(self, pii: str, reason: str, at: datetime, trace: dict[str, Any]) -> None:
        self._require_stage("a buyer rename (更名)", *BEFORE_CONTRACT)
        self.trigger_event(self.BuyerRenamed, pii=pii, reason=reason, timestamp=at, **trace)

    def reattribute(
        self,
        attribution: Attribution,
        roles: dict[str, str],
        dispute_id: str | None,
        rules: CommissionRules,
        at: datetime,
        trace: dict[str, Any],
    ) -> bool:
        """Follow a ruling; False when the deal is cancelled or nothing changes."""
        if self.stage == "cancelled" or (attribution, roles) == (self.attribution, self.roles):
            return False
        self.trigger_event(
            self.DealReattributed,
            **attribution.as_dict(),
            roles=roles,
            previous={**self.attribution.as_dict(), "roles": dict(self.roles)},
            dispute_id=dispute_id,
            timestamp=at,
            **trace,
        )
        self._settle(rules, "reattributed", at, trace)
        return True

    # ------------------------------------------------------------------ ledger

    def _settle(
        self, rules: CommissionRules, reason: str, at: datetime, trace: dict[str, Any]
    ) -> None:
        assert rules.version == self.commission_policy_version
        self.settle_commission(rules, self.payees(), self.progress(), reason, at, trace)
