"""BI views of the sales side: the deal pipeline, payment collection (回款), the commission
ledger (佣金) and the signing forecast. ``?after=<Yingke-Position>`` reads your writes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.authorization import ScopeDep
from api.deps import AppDep, FreshDep, get_container
from api.tabular import TabularDep
from api.validation import Month
from domain.vocabulary import PayeeKind
from projections import commission_ledger, dashboards, deal_queries

router = APIRouter(prefix="/v1/views", tags=["views"], dependencies=[FreshDep])

MonthQuery = Annotated[Month | None, Query(description="YYYY-MM, China time")]


@router.get("/deal-pipeline")
def deal_pipeline(
    request: Request,
    app: AppDep,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
) -> Any:
    """Deals per project and stage: count, value, received, overdue signing deadlines and
    the oldest time in stage (days). ``GET /v1/deals`` lists the deals themselves."""
    views = get_container(request).views
    return tab.rows(deal_queries.pipeline(views, scope, app.clock(), project_id=project_id))


@router.get("/payments")
def payments(
    request: Request,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    month_from: MonthQuery = None,
    month_to: MonthQuery = None,
) -> Any:
    """payment_collection: expected (contract value signed, net of cancellations) against
    received, per project and month."""
    rows = deal_queries.payments(
        get_container(request).views,
        scope,
        project_id=project_id,
        month_from=month_from,
        month_to=month_to,
    )
    return tab.rows(rows)


@router.get("/commissions")
def commissions(
    request: Request,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    payee_kind: PayeeKind | None = None,
    payee_id: str | None = None,
) -> Any:
    """commission_ledger: accrued, reversed and payable (accrued − reversed) per project
    and payee, in fen. Consultants and channel agents see their own."""
    rows = deal_queries.commissions(
        get_container(request).views,
        scope,
        project_id=project_id,
        payee_kind=payee_kind,
        payee_id=payee_id,
    )
    return tab.rows(rows)


@router.get("/commissions/entries")
def commission_entries(
    request: Request,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    deal_id: str | None = None,
    payee_kind: PayeeKind | None = None,
    payee_id: str | None = None,
    month: MonthQuery = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """Every ledger entry (CommissionAccrued / CommissionReversed) in the order written."""
    views = get_container(request).views
    return tab.page(
        lambda at, size: deal_queries.commission_entries(
            views,
            scope,
            project_id=project_id,
            deal_id=deal_id,
            payee_kind=payee_kind,
            payee_id=payee_id,
            month=month,
            cursor=at,
            limit=size,
        ),
        cursor,
        limit,
        list(commission_ledger.ENTRIES.columns),
    )


@router.get("/signing-forecast")
def signing_forecast(
    request: Request,
    app: AppDep,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    days: Annotated[int, Query(ge=1, le=31)] = deal_queries.FORECAST_DAYS,
) -> Any:
    """Contracts (签约) expected in the next ``days`` (14): deals holding a deposit or a
    subscription whose signing deadline falls in the window, per day and deal by deal;
    ``pipeline`` counts the deals in progress and the owned A-grade buyers without a deal."""
    views = get_container(request).views
    forecast = deal_queries.signing_forecast(
        views, scope, app.clock(), project_id=project_id, days=days
    )
    # Beyond the deadlines in the window: what else may sign (deals, A-grade buyers).
    forecast["pipeline"] = dashboards.pipeline(views, scope, project_id=project_id)
    # As a sheet, the forecast is its deals, one row each; JSON keeps the per-day summary.
    return forecast if tab.fmt is None else tab.download(forecast["deals"])
