"""成交 deals: 定金 → 认购 → 按揭 → 签约 → 备案 → 回款 → 交房 → 产证, 退房, 换房, 更名.

One POST per step. A step out of order answers 409 with a code (``out_of_order``,
``deal_cancelled``, ``overpayment``, ``not_fully_paid``, ``deadline_not_passed``, …).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api import bodies
from api.authorization import GuardDep, ScopeDep
from api.bodies import answer, jsonable
from api.deps import AppDep, ContextDep, FreshDep, get_container
from api.free_text import reads_notes
from api.results import command_response
from api.schemas import (
    CancelIn,
    CertificateIn,
    ContractIn,
    DealOpenIn,
    DealOut,
    DepositIn,
    FilingIn,
    LoanApprovalIn,
    LoanIn,
    PaymentIn,
    ReasonIn,
    RenameIn,
    SubscriptionIn,
    SwapIn,
)
from api.tabular import TabularDep
from domain.vocabulary import DealStage, DealStatus
from projections import deal_pipeline, deal_queries, people

router = APIRouter(prefix="/v1/deals", tags=["deals"])

# ``enforce_access`` judged the caller's relation to the deal in the path: a consultant's
# own buyers' deals, a supervisor's team's, a manager's or finance's projects'.


@router.post("", status_code=201)
def open_deal(body: DealOpenIn, app: AppDep, guard: GuardDep, ctx: ContextDep) -> Response:
    """Open a deal for a buyer on a unit: the unit is held (409 ``unit_unavailable`` if
    another deal holds it) and the buyer's attribution is copied onto the deal."""
    guard.client(body.client_id)
    return command_response(
        app.deals.open_deal(ctx.answering(answer(201, bodies.deal)), body.client_id, body.unit_id)
    )


@router.get("", dependencies=[FreshDep])
def list_deals(
    request: Request,
    app: AppDep,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    stage: DealStage | None = None,
    status: DealStatus | None = None,
    consultant_id: str | None = None,
    partner_id: str | None = None,
    client_id: str | None = None,
    overdue: Annotated[bool | None, Query(description="Signing deadline passed")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Deals (deal_pipeline), oldest first, with age in stage; scoped like the clients."""
    views, now = get_container(request).views, app.clock()
    return tab.page(
        people.named(
            views,
            lambda at, size: deal_queries.deals(
                views,
                scope,
                now,
                project_id=project_id,
                stage=stage,
                status=status,
                consultant_id=consultant_id,
                partner_id=partner_id,
                client_id=client_id,
                overdue=overdue,
                cursor=at,
                limit=size,
            ),
        ),
        cursor,
        limit,
        people.named_columns(
            [*deal_pipeline.TABLE.columns, "age_in_stage_days", "signing_overdue"]
        ),
    )


@router.get("/{deal_id}", response_model=DealOut)
def get_deal(deal_id: uuid.UUID, app: AppDep, guard: GuardDep) -> dict[str, Any]:
    """The deal now, from its stream: stage, amounts, loan, refunds and its ledger."""
    deal = guard.deal(deal_id)
    buyer = guard.buyer(deal.client_id)
    reveal = buyer is not None and reads_notes(app, guard.caller, buyer)
    # Every reader of the deal sees its documents; its reasons are notes (ADR 0045).
    # The access check's deal and the buyer just read serve the answer (the deal and the
    # buyer were read again for it).
    view = app.deals.deal(deal_id, notes=reveal, documents=True, read=(deal, buyer))
    body: dict[str, Any] = jsonable(bodies.deal(view))
    return body


@router.post("/{deal_id}/deposit")
def deposit(deal_id: uuid.UUID, body: DepositIn, app: AppDep, ctx: ContextDep) -> Response:
    """定金 paid, with the signing deadline it sets."""
    return command_response(
        app.deals.pay_deposit(
            ctx.answering(answer(200, bodies.deal)),
            deal_id,
            amount=body.amount_fen,
            method=body.method,
            signing_deadline=body.signing_deadline,
        )
    )


@router.post("/{deal_id}/subscription")
def subscription(
    deal_id: uuid.UUID, body: SubscriptionIn, app: AppDep, ctx: ContextDep
) -> Response:
    """认购 signed at a price and payment plan; the unit becomes subscribed."""
    return command_response(
        app.deals.sign_subscription(
            ctx.answering(answer(200, bodies.deal)),
            deal_id,
            price=body.price_fen,
            payment_plan=body.payment_plan,
            signing_deadline=body.signing_deadline,
        )
    )


@router.post("/{deal_id}/loan")
def loan(deal_id: uuid.UUID, body: LoanIn, app: AppDep, ctx: ContextDep) -> Response:
    """按揭 applied for (mortgage plan only; again after a refusal)."""
    return command_response(
        app.deals.apply_loan(
            ctx.answering(answer(200, bodies.deal)), deal_id, bank=body.bank, amount=body.amount_fen
        )
    )


@router.post("/{deal_id}/loan/approve")
def approve_loan(
    deal_id: uuid.UUID,
    app: AppDep,
    ctx: ContextDep,
    body: LoanApprovalIn | None = None,
) -> Response:
    """The bank approved the loan (银行审批通过)."""
    amount = body.amount_fen if body else None
    return command_response(
        app.deals.approve_loan(ctx.answering(answer(200, bodies.deal)), deal_id, amount=amount)
    )


@router.post("/{deal_id}/loan/refuse")
def refuse_loan(deal_id: uuid.UUID, body: ReasonIn, app: AppDep, ctx: ContextDep) -> Response:
    """The bank refused the loan; the buyer may apply again or cancel."""
    return command_response(
        app.deals.refuse_loan(ctx.answering(answer(200, bodies.deal)), deal_id, reason=body.reason)
    )


@router.post("/{deal_id}/contract")
def contract(deal_id: uuid.UUID, body: ContractIn, app: AppDep, ctx: ContextDep) -> Response:
    """签约: the sale contract, its number and price; the unit becomes signed."""
    return command_response(
        app.deals.sign_contract(
            ctx.answering(answer(200, bodies.deal)),
            deal_id,
            contract_no=body.contract_no,
            price=body.price_fen,
        )
    )


@router.post("/{deal_id}/filing")
def filing(
    deal_id: uuid.UUID,
    app: AppDep,
    ctx: ContextDep,
    body: FilingIn | None = None,
) -> Response:
    """备案: the contract is filed with the housing authority; the unit is sold."""
    return command_response(
        app.deals.file_contract(
            ctx.answering(answer(200, bodies.deal)),
            deal_id,
            filing_no=body.filing_no if body else None,
        )
    )


@router.post("/{deal_id}/payments")
def payment(deal_id: uuid.UUID, body: PaymentIn, app: AppDep, ctx: ContextDep) -> Response:
    """回款 received (finance, manager): never past the price. Send an Idempotency-Key."""
    return command_response(
        app.deals.receive_payment(
            ctx.answering(answer(200, bodies.deal)), deal_id, amount=body.amount_fen, kind=body.kind
        )
    )


@router.post("/{deal_id}/delivery")
def delivery(deal_id: uuid.UUID, app: AppDep, ctx: ContextDep) -> Response:
    """交房: after filing, once the price is fully received."""
    return command_response(
        app.deals.deliver_unit(ctx.answering(answer(200, bodies.deal)), deal_id)
    )


@router.post("/{deal_id}/certificate")
def certificate(
    deal_id: uuid.UUID,
    app: AppDep,
    ctx: ContextDep,
    body: CertificateIn | None = None,
) -> Response:
    """产证 issued: the deal is completed."""
    number = body.certificate_no if body else None
    return command_response(
        app.deals.issue_certificate(
            ctx.answering(answer(200, bodies.deal)), deal_id, certificate_no=number
        )
    )


@router.post("/{deal_id}/cancel")
def cancel(deal_id: uuid.UUID, body: CancelIn, app: AppDep, ctx: ContextDep) -> Response:
    """退房 (finance, manager): the unit is released, refund and forfeiture follow the
    deposit rules, and every commission accrued is reversed."""
    return command_response(
        app.deals.cancel_deal(
            ctx.answering(answer(200, bodies.deal)), deal_id, reason=body.reason, fault=body.fault
        )
    )


@router.post("/{deal_id}/swap")
def swap(deal_id: uuid.UUID, body: SwapIn, app: AppDep, ctx: ContextDep) -> Response:
    """换房 before the contract: the old unit is released, the new one held, money paid
    carries over and the subscription is signed again."""
    return command_response(
        app.deals.swap_unit(
            ctx.answering(answer(200, bodies.deal)),
            deal_id,
            new_unit_id=body.unit_id,
            reason=body.reason,
        )
    )


@router.post("/{deal_id}/rename")
def rename(deal_id: uuid.UUID, body: RenameIn, app: AppDep, ctx: ContextDep) -> Response:
    """更名 before the contract; the name is sealed under the buyer's key."""
    return command_response(
        app.deals.rename_buyer(
            ctx.answering(answer(200, bodies.deal)),
            deal_id,
            buyer_name=body.buyer_name,
            reason=body.reason,
        )
    )
