"""Dealing: units (房源), deals (成交) from deposit to certificate, and commission (佣金).

Every deal command saves the deal, the client (a ``DealMilestoneRecorded`` in the
buyer's evidence chain) and, when the unit's status moves, the unit, in one transaction.
The unit stream is what makes "never sold twice" hold: two deals opened on one unit at
once collide on it, and the retry finds it held.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.aftercare import Aftercare
from domain.client import Client
from domain.commission import CommissionPolicy, CommissionRules
from domain.custody import Ownership
from domain.deal import Attribution, Deal
from domain.errors import Conflict, Forbidden, InvalidInput, InvalidRows
from domain.service import CommandResult, Context, Decision, jsonable_dict
from domain.unit import Unit, UnitSpec, parse_unit, unit_id
from domain.values import Actor, check_identifier, mask_name
from domain.versioned import settings_body

MAX_IMPORT_ROWS = 5000
Step = Callable[[Deal, CommissionRules, datetime], tuple[list[Aggregate], int | None]]


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


def unit_body(unit: Unit) -> dict[str, Any]:
    return {
        "unit_id": unit.id,
        "project_id": unit.project_id,
        "building": unit.building,
        "number": unit.number,
        "rooms": unit.rooms,
        "area": float(unit.area),
        "floor": unit.floor,
        "orientation": unit.orientation,
        "list_price_fen": unit.list_price,
        "status": unit.status,
        "deal_id": unit.deal_id,
    }


class Dealing(Aftercare):
    # ------------------------------------------------------ commission policy

    def commission_rules(self, project_id: str, version: int | None = None) -> CommissionRules:
        return self._settings_version(CommissionPolicy, project_id, version)[0]

    def commission_policy(self, project_id: str, version: int | None = None) -> dict[str, Any]:
        rules, since = self._settings_version(CommissionPolicy, project_id, version)
        return jsonable_dict(settings_body(project_id, rules, since))

    def set_commission_policy(
        self,
        ctx: Context,
        project_id: str,
        settings: dict[str, Any],
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._set_settings(CommissionPolicy, ctx, project_id, settings, expected_version)

    # ----------------------------------------------------------------- units

    def import_units(
        self, ctx: Context, project_id: str, rows: list[tuple[str, dict[str, Any]]]
    ) -> CommandResult:
        """List or revise units from labelled rows ("line 7"); all of them or none."""
        check_identifier(project_id, "project_id")
        if not rows:
            raise InvalidInput("units", "the import has no rows")
        if len(rows) > MAX_IMPORT_ROWS:
            raise InvalidInput("units", f"at most {MAX_IMPORT_ROWS} rows per import")
        specs = self._parse_rows(rows)

        def decide(now: datetime) -> Decision:
            touched: list[Aggregate | None] = []
            problems: list[tuple[str, str, str]] = []
            outcomes: list[dict[str, Any]] = []
            for label, spec in specs:
                uid = unit_id(project_id, spec.building, spec.number)
                unit = self._find(Unit, uid)
                if unit is None:
                    touched.append(Unit.create_listing(project_id, spec, now, ctx.trace))
                    outcome = "listed"
                else:
                    try:
                        outcome = "revised" if unit.revise(spec, now, ctx.trace) else "unchanged"
                    except Conflict as exc:
                        problems.append((f"{label}: number", str(exc), exc.code))
                        continue
                    touched.append(unit)
                outcomes.append({"unit_id": uid, **self._label(spec), "outcome": outcome})
            if problems:
                raise InvalidRows(problems)
            counts = {k: sum(o["outcome"] == k for o in outcomes) for k in ("listed", "revised")}
            body = {
                "project_id": project_id,
                "rows": len(specs),
                **counts,
                "unchanged": len(specs) - sum(counts.values()),
                "units": outcomes,
            }
            return touched, body

        return self._execute(ctx, decide, status_code=200)

    @staticmethod
    def _label(spec: UnitSpec) -> dict[str, str]:
        return {"building": spec.building, "number": spec.number}

    @staticmethod
    def _parse_rows(rows: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, UnitSpec]]:
        specs: list[tuple[str, UnitSpec]] = []
        problems: list[tuple[str, str, str]] = []
        seen: dict[tuple[str, str], str] = {}
        for label, raw in rows:
            try:
                spec = parse_unit(raw)
            except InvalidInput as exc:
                problems.append((f"{label}: {exc.field}", str(exc), exc.code))
                continue
            first = seen.setdefault((spec.building, spec.number), label)
            if first != label:
                problems.append(
                    (
                        f"{label}: number",
                        f"repeats unit {spec.building}-{spec.number} of {first}",
                        "duplicate_unit",
                    )
                )
            specs.append((label, spec))
        if problems:
            raise InvalidRows(problems)
        return specs

    def unit(self, uid: uuid.UUID) -> dict[str, Any]:
        return jsonable_dict(unit_body(self._get(Unit, uid, "unit")))

    # ----------------------------------------------------------------- deals

    def deal_state(self, deal_id: uuid.UUID) -> Deal:
        return self._get(Deal, deal_id, "deal")

    def deal_concerns(self, principal_id: str, deal: Deal) -> bool:
        """Whether the deal is this consultant's: its attributed one, or the buyer's owner."""
        if deal.attribution.consultant_id == principal_id:
            return True
        client = self._find(Client, deal.client_id)
        return bool(client and client.owner and client.owner.consultant_id == principal_id)

    def _check_actor(self, actor: Actor, deal: Deal, client: Client) -> None:
        owner = client.owner.consultant_id if client.owner else None
        if actor.role == "consultant" and actor.id not in (deal.attribution.consultant_id, owner):
            raise Forbidden("a consultant acts only on deals of their own buyers")

    def _rules(self, deal: Deal) -> CommissionRules:
        return self.commission_rules(deal.project_id, deal.commission_policy_version)

    def open_deal(self, ctx: Context, client_id: uuid.UUID, uid: uuid.UUID) -> CommandResult:
        deal_id = uuid.uuid4()

        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            owner = client.owner
            if owner is None:
                raise Conflict(
                    "the client has no owner: a deal needs an attributed consultant",
                    code="not_owned",
                )
            if ctx.actor.role == "consultant" and ctx.actor.id != owner.consultant_id:
                raise Forbidden("a consultant opens deals only for their own buyers")
            unit = self._find(Unit, uid)
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
                commission_policy_version=self.commission_rules(client.project_id).version,
                at=now,
                trace=ctx.trace,
            )
            unit.hold(deal.id, client.id, now, ctx.trace)
            self._milestone(client, deal, "opened", None, now, ctx)
            return [deal, unit, client], self._deal_body(deal, now)

        return self._execute(ctx, decide)

    def _milestone(
        self,
        client: Client,
        deal: Deal,
        milestone: str,
        amount: int | None,
        now: datetime,
        ctx: Context,
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

    def _step(self, ctx: Context, deal_id: uuid.UUID, milestone: str, act: Step) -> CommandResult:
        """Load the deal and its buyer, take one step, record it in the buyer's history."""

        def decide(now: datetime) -> Decision:
            deal = self.deal_state(deal_id)
            client = self.client(deal.client_id)
            self._check_actor(ctx.actor, deal, client)
            touched, amount = act(deal, self._rules(deal), now)
            self._milestone(client, deal, milestone, amount, now, ctx)
            return [deal, client, *touched], self._deal_body(deal, now)

        return self._execute(ctx, decide, status_code=200)

    def _unit(self, deal: Deal) -> Unit:
        return self._get(Unit, deal.unit_id, "unit")

    def pay_deposit(
        self,
        ctx: Context,
        deal_id: uuid.UUID,
        *,
        amount: int,
        method: str,
        signing_deadline: datetime,
    ) -> CommandResult:
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
    ) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            deal.sign_subscription(price, payment_plan, signing_deadline, rules, now, ctx.trace)
            unit = self._unit(deal)
            unit.subscribe(deal.id, now, ctx.trace)
            return [unit], price

        return self._step(ctx, deal_id, "subscription_signed", act)

    def apply_loan(
        self, ctx: Context, deal_id: uuid.UUID, *, bank: str, amount: int
    ) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            deal.apply_loan(bank, amount, now, ctx.trace)
            return [], amount

        return self._step(ctx, deal_id, "loan_applied", act)

    def approve_loan(
        self, ctx: Context, deal_id: uuid.UUID, *, amount: int | None = None
    ) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int | None]:
            deal.approve_loan(amount, now, ctx.trace)
            return [], deal.loan_amount

        return self._step(ctx, deal_id, "loan_approved", act)

    def refuse_loan(self, ctx: Context, deal_id: uuid.UUID, *, reason: str) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            deal.refuse_loan(reason, now, ctx.trace)
            return [], None

        return self._step(ctx, deal_id, "loan_refused", act)

    def sign_contract(
        self, ctx: Context, deal_id: uuid.UUID, *, contract_no: str, price: int
    ) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            deal.sign_contract(contract_no, price, rules, now, ctx.trace)
            unit = self._unit(deal)
            unit.contract(deal.id, price, now, ctx.trace)
            return [unit], price

        return self._step(ctx, deal_id, "contract_signed", act)

    def file_contract(
        self, ctx: Context, deal_id: uuid.UUID, *, filing_no: str | None = None
    ) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            deal.file_contract(filing_no, rules, now, ctx.trace)
            unit = self._unit(deal)
            unit.sell(deal.id, now, ctx.trace)
            return [unit], None

        return self._step(ctx, deal_id, "contract_filed", act)

    def receive_payment(
        self, ctx: Context, deal_id: uuid.UUID, *, amount: int, kind: str
    ) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            deal.receive_payment(amount, kind, rules, now, ctx.trace)
            return [], amount

        return self._step(ctx, deal_id, "payment_received", act)

    def deliver_unit(self, ctx: Context, deal_id: uuid.UUID) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            deal.deliver(rules, now, ctx.trace)
            return [], None

        return self._step(ctx, deal_id, "unit_delivered", act)

    def issue_certificate(
        self, ctx: Context, deal_id: uuid.UUID, *, certificate_no: str | None = None
    ) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            deal.issue_certificate(certificate_no, rules, now, ctx.trace)
            return [], None

        return self._step(ctx, deal_id, "certificate_issued", act)

    def cancel_deal(
        self, ctx: Context, deal_id: uuid.UUID, *, reason: str, fault: str
    ) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], int]:
            deal.cancel(reason, fault, rules, now, ctx.trace)
            unit = self._unit(deal)
            unit.release(deal.id, "cancelled", now, ctx.trace)
            assert deal.cancellation is not None
            return [unit], int(deal.cancellation["refund_fen"])

        return self._step(ctx, deal_id, "cancelled", act)

    def swap_unit(
        self, ctx: Context, deal_id: uuid.UUID, *, new_unit_id: uuid.UUID, reason: str
    ) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            old = self._unit(deal)
            new = self._find(Unit, new_unit_id)
            if new is None or new.project_id != deal.project_id:
                raise InvalidInput("unit_id", "must name a unit of the deal's project")
            deal.swap_unit(
                unit_id=new.id,
                building=new.building,
                number=new.number,
                list_price=new.list_price,
                reason=reason,
                rules=rules,
                at=now,
                trace=ctx.trace,
            )
            old.release(deal.id, "swapped", now, ctx.trace)
            new.hold(deal.id, deal.client_id, now, ctx.trace)
            return [old, new], None

        return self._step(ctx, deal_id, "unit_swapped", act)

    def rename_buyer(
        self, ctx: Context, deal_id: uuid.UUID, *, buyer_name: str, reason: str
    ) -> CommandResult:
        def act(deal: Deal, rules: CommissionRules, now: datetime) -> tuple[list[Any], None]:
            # Sealed under the buyer's key: erasing the client erases the new name too.
            pii = self.vault.seal(deal.client_id, {"name": buyer_name})
            deal.rename_buyer(pii, reason, now, ctx.trace)
            return [], None

        return self._step(ctx, deal_id, "buyer_renamed", act)

    # ------------------------------------------------------------- rulings

    def _follow_ruling(
        self,
        client: Client,
        before: Ownership | None,
        dispute_id: str,
        now: datetime,
        ctx: Context,
    ) -> list[Any]:
        """A ruling that moved the attribution moves it on the buyer's deals too, in the
        ruling's transaction: the ledger reverses the old payees and accrues the new."""
        after = client.owner

        def key(o: Ownership | None) -> tuple[str, str | None, str | None] | None:
            return (o.consultant_id, o.partner_id, o.report_id) if o else None

        if after is None or key(before) == key(after):
            return []
        touched: list[Any] = []
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
                self._milestone(client, deal, "reattributed", None, now, ctx)
                touched.append(deal)
        return touched

    # ---------------------------------------------------------------- reads

    def deal(self, deal_id: uuid.UUID) -> dict[str, Any]:
        return jsonable_dict(self._deal_body(self.deal_state(deal_id), self.clock()))

    def _buyer_name(self, deal: Deal) -> str | None:
        if deal.buyer_pii is None:
            return None
        opened = self.vault.open(deal.client_id, deal.buyer_pii)
        return (mask_name(opened.get("name", "")) or None) if opened else None

    def _deal_body(self, deal: Deal, now: datetime) -> dict[str, Any]:
        price = deal.agreed_price
        return {
            "deal_id": deal.id,
            "project_id": deal.project_id,
            "client_id": deal.client_id,
            "unit": {
                "unit_id": deal.unit_id,
                "building": deal.building,
                "number": deal.number,
                "list_price_fen": deal.list_price,
            },
            "stage": deal.stage,
            "status": deal.status,
            "stage_since": deal.stage_since,
            "opened_at": deal.created_on,
            "version": deal.version,
            "attribution": deal.attribution.as_dict(),
            "roles": deal.roles,
            "commission_policy_version": deal.commission_policy_version,
            "deposit_fen": deal.deposit,
            "deposit_method": deal.deposit_method,
            "signing_deadline": deal.signing_deadline,
            "signing_overdue": deal.signing_overdue(now),
            "payment_plan": deal.payment_plan,
            "subscription_price_fen": deal.price,
            "contract_no": deal.contract_no,
            "contract_price_fen": deal.contract_price,
            "price_fen": price,
            "received_fen": deal.received,
            "outstanding_fen": price - deal.received if price is not None else None,
            "loan": {
                "status": deal.loan_status,
                "bank": deal.loan_bank,
                "amount_fen": deal.loan_amount,
                "disbursed_fen": deal.loan_disbursed,
            },
            "filing_no": deal.filing_no,
            "certificate_no": deal.certificate_no,
            "cancellation": deal.cancellation,
            "swaps": deal.swaps,
            "buyer_name_masked": self._buyer_name(deal),
            "milestones": deal.milestones,
            "commission": {
                **deal.commission_totals(),
                "entries": [
                    {
                        "entry_id": line.entry_id,
                        "kind": line.kind,
                        "payee_kind": line.payee_kind,
                        "payee_id": line.payee_id,
                        "role": line.role,
                        "milestone": line.milestone,
                        "amount_fen": line.amount,
                        "reverses": line.reverses,
                        "reversed_by": line.reversed_by,
                        "reason": line.reason,
                        "at": line.at,
                    }
                    for line in deal.ledger
                ],
            },
        }
