"""Deals (成交) from deposit to certificate, and the commission they carry (佣金).

Every deal command saves the deal, the client (a ``DealMilestoneRecorded`` in the
buyer's evidence chain) and, when the unit's status moves, the unit, in one transaction.
The unit stream is what makes "never sold twice" hold: two deals opened on one unit at
once collide on it, and the retry finds it held.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.client import Client
from domain.commission import CommissionRules
from domain.custody import Ownership
from domain.deal import Attribution, Deal
from domain.errors import Conflict, Forbidden, InvalidInput
from domain.ports import Clock, PersonalDataVault
from domain.sealing import Sealer, open_places, seal_text
from domain.services.clients import Clients
from domain.services.policies import Policies
from domain.services.uow import Context, Done, UnitOfWork
from domain.unit import Unit
from domain.values import SYSTEM, Actor, mask_name

Step = Callable[[Deal, CommissionRules, datetime], tuple[list[Aggregate], int | None]]


@dataclass(frozen=True)
class DealView:
    deal: Deal
    buyer_name_masked: str | None
    at: datetime
    # Free text by place ("cancellation", "swap:<n>"), opened for a reader; None: sealed.
    texts: dict[str, Any] | None = None


def consultant_roles(client: Client, owner: Ownership) -> dict[str, str]:
    """Who earns each consultant share, from the visits of the current ownership.

    The first receiver (首接) received the first of those visits, the accompanying
    consultant the latest; the closing consultant is the owner. Visits from before the
    ownership (a pool claim, a transfer) earn nothing: the buyer had been let go.
    """
    visits = [v for v in client.visits if v.at >= owner.since]
    return {
        "first_receiver": visits[0].consultant_id if visits else owner.consultant_id,
        "accompanying": visits[-1].consultant_id if visits else owner.consultant_id,
        "closing": owner.consultant_id,
    }


def record_milestone(
    client: Client, deal: Deal, milestone: str, amount: int | None, now: datetime, ctx: Context
) -> None:
    client.record_deal_milestone(
        deal_id=deal.id,
        unit_id=deal.unit_id,
        milestone=milestone,
        deal_status=deal.status,
        amount=amount,
        at=now,
        trace=ctx.trace,
    )


class Deals:
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        vault: PersonalDataVault,
        policies: Policies,
        clients: Clients,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.vault = vault
        self.policies = policies
        self.clients = clients

    # ----------------------------------------------------------------- reads

    def deal_state(self, deal_id: uuid.UUID) -> Deal:
        return self.uow.get(Deal, deal_id, "deal")

    def _sealer(self, deal: Deal) -> Sealer:
        """Seals a deal's text under its buyer's key: erasing the buyer erases it too."""
        return lambda data: self.vault.seal(deal.client_id, data)

    def deal(
        self,
        deal_id: uuid.UUID,
        *,
        notes: bool = False,
        documents: bool = False,
        read: tuple[Deal, Client | None] | None = None,
    ) -> DealView:
        """The deal, its reasons opened when ``notes`` (for those serving the buyer) and
        its document labels (lender, contract, filing, certificate) when ``documents``.
        ``read``: the deal and its buyer as the caller has just read them (not read
        again), else they are read here."""
        state = read[0] if read is not None else self.deal_state(deal_id)
        view = self._view(state, self.clock())
        if not (notes or documents):
            return view
        deal = view.deal
        clear: dict[str, Any] = {}
        if documents:
            clear.update(
                loan_bank=deal.loan_bank,
                contract_no=deal.contract_no,
                filing_no=deal.filing_no,
                certificate_no=deal.certificate_no,
            )
        if notes:
            clear.update({f"swap:{i}": s.get("reason") for i, s in enumerate(deal.swaps)})
            if deal.cancellation is not None:
                clear["cancellation"] = deal.cancellation.get("reason")
        client = read[1] if read is not None else self.clients.find(deal.client_id)
        # A deal's versions are not the buyer's, so no boundary: clear text on a deal was
        # stored before sealing (ADR 0045), long before any erased buyer came back
        # (Client.BuyerReturned), so once erased it stays so. Tokens judge themselves.
        erased = bool(client and (client.erased or client.erased_through))
        texts = open_places(self.vault, deal.client_id, deal.sealed_texts, clear, erased=erased)
        return DealView(deal, view.buyer_name_masked, view.at, texts)

    def _view(self, deal: Deal, at: datetime) -> DealView:
        name = None
        if deal.buyer_pii is not None:
            opened = self.vault.open(deal.client_id, deal.buyer_pii)
            name = (mask_name(opened.get("name", "")) or None) if opened else None
        return DealView(deal, name, at)

    def deal_concerns(self, principal_id: str, deal: Deal) -> bool:
        """Whether the deal is this consultant's: its attributed one, or the buyer's owner."""
        if deal.attribution.consultant_id == principal_id:
            return True
        client = self.clients.find(deal.client_id)
        return bool(client and client.owner and client.owner.consultant_id == principal_id)

    # ----------------------------------------------------------------- steps

    def _rules(self, deal: Deal) -> CommissionRules:
        return self.policies.commission_rules(deal.project_id, deal.commission_policy_version)

    def _unit(self, deal: Deal) -> Unit:
        return self.uow.get(Unit, deal.unit_id, "unit")

    def open_deal(self, ctx: Context, client_id: uuid.UUID, uid: uuid.UUID) -> Done[DealView]:
        deal_id = uuid.uuid4()

        def decide(now: datetime) -> tuple[list[Any], DealView]:
            client = self.clients.client(client_id)
            owner = client.owner
            if owner is None:
                raise Conflict(
                    "the client has no owner: a deal needs an attributed consultant",
                    code="not_owned",
                )
            if ctx.actor.role == "consultant" and ctx.actor.id != owner.consultant_id:
                raise Forbidden("a consultant opens deals only for their own buyers")
            unit = self.uow.find(Unit, uid)
            if unit is None or unit.project_id != client.project_id:
                raise InvalidInput("unit_id", "must name a unit of the client's project")
            deal = Deal.open(
                deal_id,
                project_id=client.project_id,
                client_id=client.id,
                unit_id=unit.id,
                building=unit.building,
                number=unit.number,
                list_price=unit.list_price,
                attribution=Attribution(
                    owner.consultant_id,
                    owner.partner_id,
                    owner.report_id,
                    owner.basis,
                    owner.policy_version,
                ),
                roles=consultant_roles(client, owner),
                commission_policy_version=self.policies.commission_rules(client.project_id).version,
                at=now,
                trace=ctx.trace,
            )
            unit.hold(deal.id, client.id, now, ctx.trace)
            record_milestone(client, deal, "opened", None, now, ctx)
            return [deal, unit, client], self._view(deal, now)

        return self.uow.run(ctx, decide)

    def escalate_negotiation(self, deal_id: uuid.UUID) -> bool:
        """A deadline: negotiation (定金/认购 without 签约) past the project's
        ``negotiation_escalation`` becomes the manager's task, once per deal."""
        ctx = Context(SYSTEM, f"deadline:negotiation:{deal_id}")

        def decide(now: datetime) -> tuple[list[Any], bool]:
            deal = self.uow.find(Deal, deal_id)
            if deal is None:
                return [], False
            policy = self.policies.policy_for(deal.project_id)
            after = policy.delta("negotiation_escalation")
            acted = deal.escalate_negotiation(after, policy.version, now, ctx.trace)
            return ([deal] if acted else []), acted

        return bool(self.uow.run(ctx, decide).outcome)

    def _step(self, ctx: Context, deal_id: uuid.UUID, milestone: str, act: Step) -> Done[DealView]:
        """Load the deal and its buyer, take one step, record it in the buyer's history."""

        def decide(now: datetime) -> tuple[list[Any], DealView]:
            deal = self.deal_state(deal_id)
            client = self.clients.client(deal.client_id)
            _check_actor(ctx.actor, deal, client)
            touched, amount = act(deal, self._rules(deal), now)
            record_milestone(client, deal, milestone, amount, now, ctx)
            return [deal, client, *touched], self._view(deal, now)

        return self.uow.run(ctx, decide)

    def pay_deposit(
        self,
        ctx: Context,
        deal_id: uuid.UUID,
        *,
        amount: int,
        method: str,
        signing_deadline: datetime,
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            deal.pay_deposit(amount, method, signing_deadline, rules, now, ctx.trace)
            return [], amount

        return self._step(ctx, deal_id, "deposit_paid", act)

    def sign_subscription(
        self,
        ctx: Context,
        deal_id: uuid.UUID,
        *,
        price: int,
        payment_plan: str,
        signing_deadline: datetime | None = None,
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            deal.sign_subscription(price, payment_plan, signing_deadline, rules, now, ctx.trace)
            unit = self._unit(deal)
            unit.subscribe(deal.id, now, ctx.trace)
            return [unit], price

        return self._step(ctx, deal_id, "subscription_signed", act)

    def apply_loan(
        self, ctx: Context, deal_id: uuid.UUID, *, bank: str, amount: int
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            deal.apply_loan(bank, amount, now, ctx.trace, self._sealer(deal))
            return [], amount

        return self._step(ctx, deal_id, "loan_applied", act)

    def approve_loan(
        self, ctx: Context, deal_id: uuid.UUID, *, amount: int | None = None
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int | None]:
            deal.approve_loan(amount, now, ctx.trace)
            return [], deal.loan_amount

        return self._step(ctx, deal_id, "loan_approved", act)

    def refuse_loan(self, ctx: Context, deal_id: uuid.UUID, *, reason: str) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            sealed = seal_text(self.vault, deal.client_id, reason=reason)
            deal.refuse_loan("", now, ctx.trace, sealed)
            return [], None

        return self._step(ctx, deal_id, "loan_refused", act)

    def sign_contract(
        self, ctx: Context, deal_id: uuid.UUID, *, contract_no: str, price: int
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            deal.sign_contract(contract_no, price, rules, now, ctx.trace, self._sealer(deal))
            unit = self._unit(deal)
            unit.contract(deal.id, price, now, ctx.trace)
            return [unit], price

        return self._step(ctx, deal_id, "contract_signed", act)

    def file_contract(
        self, ctx: Context, deal_id: uuid.UUID, *, filing_no: str | None = None
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            deal.file_contract(filing_no, rules, now, ctx.trace, self._sealer(deal))
            unit = self._unit(deal)
            unit.sell(deal.id, now, ctx.trace)
            return [unit], None

        return self._step(ctx, deal_id, "contract_filed", act)

    def receive_payment(
        self, ctx: Context, deal_id: uuid.UUID, *, amount: int, kind: str
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            deal.receive_payment(amount, kind, rules, now, ctx.trace)
            return [], amount

        return self._step(ctx, deal_id, "payment_received", act)

    def deliver_unit(self, ctx: Context, deal_id: uuid.UUID) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            deal.deliver(rules, now, ctx.trace)
            return [], None

        return self._step(ctx, deal_id, "unit_delivered", act)

    def issue_certificate(
        self, ctx: Context, deal_id: uuid.UUID, *, certificate_no: str | None = None
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            deal.issue_certificate(certificate_no, rules, now, ctx.trace, self._sealer(deal))
            return [], None

        return self._step(ctx, deal_id, "certificate_issued", act)

    def cancel_deal(
        self, ctx: Context, deal_id: uuid.UUID, *, reason: str, fault: str
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            sealed = seal_text(self.vault, deal.client_id, reason=reason)
            deal.cancel("", fault, rules, now, ctx.trace, sealed)
            unit = self._unit(deal)
            unit.release(deal.id, "cancelled", now, ctx.trace)
            assert deal.cancellation is not None
            return [unit], int(deal.cancellation["refund_fen"])

        return self._step(ctx, deal_id, "cancelled", act)

    def swap_unit(
        self, ctx: Context, deal_id: uuid.UUID, *, new_unit_id: uuid.UUID, reason: str
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            old = self._unit(deal)
            new = self.uow.find(Unit, new_unit_id)
            if new is None or new.project_id != deal.project_id:
                raise InvalidInput("unit_id", "must name a unit of the deal's project")
            deal.swap_unit(
                unit_id=new.id,
                building=new.building,
                number=new.number,
                list_price=new.list_price,
                reason="",
                rules=rules,
                at=now,
                trace=ctx.trace,
                sealed=seal_text(self.vault, deal.client_id, reason=reason),
            )
            old.release(deal.id, "swapped", now, ctx.trace)
            new.hold(deal.id, deal.client_id, now, ctx.trace)
            return [old, new], None

        return self._step(ctx, deal_id, "unit_swapped", act)

    def rename_buyer(
        self, ctx: Context, deal_id: uuid.UUID, *, buyer_name: str, reason: str
    ) -> Done[DealView]:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            # Sealed under the buyer's key: erasing the client erases the new name too,
            # and the reason, which may name anyone (ADR 0045).
            pii = self.vault.seal(deal.client_id, {"name": buyer_name, "reason": reason})
            deal.rename_buyer(pii, "", now, ctx.trace)
            return [], None

        return self._step(ctx, deal_id, "buyer_renamed", act)

    # ------------------------------------------------------------- rulings

    def follow_ruling(
        self,
        client: Client,
        before: Ownership | None,
        dispute_id: str,
        now: datetime,
        ctx: Context,
    ) -> list[Deal]:
        """Move a ruling's new attribution onto the buyer's deals; return those changed.

        Called by ``Disputes.rule_dispute`` inside the ruling's transaction: the ledger
        reverses the old payees and accrues the new ones.
        """
        after = client.owner

        def key(o: Ownership | None) -> tuple[str, str | None, str | None] | None:
            return (o.consultant_id, o.partner_id, o.report_id) if o else None

        if after is None or key(before) == key(after):
            return []
        touched: list[Deal] = []
        for deal_key, status in list(client.deals.items()):
            if status == "cancelled":
                continue
            deal = self.deal_state(uuid.UUID(deal_key))
            previous = deal.attribution.consultant_id
            roles = {
                role: after.consultant_id if who == previous or role == "closing" else who
                for role, who in deal.roles.items()
            }
            attribution = Attribution(
                after.consultant_id,
                after.partner_id,
                after.report_id,
                after.basis,
                after.policy_version,
            )
            if deal.reattribute(attribution, roles, dispute_id, self._rules(deal), now, ctx.trace):
                record_milestone(client, deal, "reattributed", None, now, ctx)
                touched.append(deal)
        return touched


def _check_actor(actor: Actor, deal: Deal, client: Client) -> None:
    owner = client.owner.consultant_id if client.owner else None
    if actor.role == "consultant" and actor.id not in (deal.attribution.consultant_id, owner):
        raise Forbidden("a consultant acts only on deals of their own buyers")
