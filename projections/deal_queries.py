"""Read queries over the deal views: units, the deal pipeline, payment collection, the
commission ledger and the signing forecast. Scoped and paginated as in ``queries``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.deal import AWAITING_SIGNATURE
from projections import commission_ledger, deal_pipeline, payment_collection, units
from projections.common import day_of
from projections.queries import Page, Scope, Where, page, scoped, select_rows
from projections.runtime import ViewDB
from projections.sql import read_ts, ts

FORECAST_DAYS = 14


def list_units(
    db: ViewDB,
    project_id: str,
    *,
    building: str | None = None,
    status: str | None = None,
    rooms: int | None = None,
    orientation: str | None = None,
    floor_from: int | None = None,
    floor_to: int | None = None,
    area_from: float | None = None,
    area_to: float | None = None,
    price_from: int | None = None,
    price_to: int | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Page:
    """A project's units by building, floor and number; ranges are inclusive."""
    where = Where()
    where.equal_all(
        project_id=project_id,
        building=building,
        status=status,
        rooms=rooms,
        orientation=orientation,
    )
    where.between("floor", floor_from, floor_to)
    where.between("area", area_from, area_to)
    where.between("list_price_fen", price_from, price_to)
    order = ("building", "floor", "number", "unit_id")
    return page(db, units.TABLE, where, order, cursor, limit)


def _with_age(item: dict[str, Any], now: datetime) -> dict[str, Any]:
    since, deadline = item["stage_since"], item["signing_deadline"]
    item["age_in_stage_days"] = max(0, (now - since).days) if since else None
    item["signing_overdue"] = bool(
        item["stage"] in AWAITING_SIGNATURE and deadline is not None and now > deadline
    )
    return item


def deals(
    db: ViewDB,
    scope: Scope,
    now: datetime,
    *,
    project_id: str | None = None,
    stage: str | None = None,
    status: str | None = None,
    consultant_id: str | None = None,
    partner_id: str | None = None,
    client_id: str | None = None,
    overdue: bool | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """Deals oldest first, each with its age in stage and whether its signing is overdue."""
    where = scoped(scope)
    where.equal_all(
        project_id=project_id,
        stage=stage,
        status=status,
        consultant_id=consultant_id,
        partner_id=partner_id,
        client_id=client_id,
    )
    if overdue is not None:
        marks = ", ".join(["%s"] * len(AWAITING_SIGNATURE))
        late = f"(stage IN ({marks}) AND signing_deadline IS NOT NULL AND signing_deadline < %s)"
        where.add(late if overdue else f"NOT {late}", *AWAITING_SIGNATURE, ts(db.dialect, now))
    result = page(db, deal_pipeline.TABLE, where, ("opened_at", "deal_id"), cursor, limit)
    result.items = [_with_age(item, now) for item in result.items]
    return result


def pipeline(
    db: ViewDB, scope: Scope, now: datetime, *, project_id: str | None = None
) -> list[dict[str, Any]]:
    """Per project and stage: deals, value (agreed price, else list price), received,
    overdue signing deadlines and the oldest time in stage."""
    where = scoped(scope)
    where.equal("project_id", project_id)
    at = ts(db.dialect, now)
    marks = ", ".join(["%s"] * len(AWAITING_SIGNATURE))
    rows = db.query(
        "SELECT project_id, stage, COUNT(*), SUM(COALESCE(price_fen, list_price_fen)), "
        "SUM(received_fen), "
        f"SUM(CASE WHEN stage IN ({marks}) AND signing_deadline < %s THEN 1 ELSE 0 END), "
        f"MIN(stage_since) FROM {deal_pipeline.TABLE.name}{where.sql()} "
        "GROUP BY project_id, stage ORDER BY project_id, stage",
        (*AWAITING_SIGNATURE, at, *where.params),
    )
    out = []
    for project, stage, count, value, received, overdue, oldest in rows:
        since = read_ts(oldest)
        out.append(
            {
                "project_id": project,
                "stage": stage,
                "deals": int(count),
                "value_fen": int(value or 0),
                "received_fen": int(received or 0),
                "signing_overdue": int(overdue or 0),
                "oldest_in_stage_days": max(0, (now - since).days) if since else None,
            }
        )
    return out


def payments(
    db: ViewDB,
    scope: Scope,
    *,
    project_id: str | None = None,
    month_from: str | None = None,
    month_to: str | None = None,
) -> list[dict[str, Any]]:
    """payment_collection rows per project and month; month bounds inclusive."""
    where = Where()
    where.within("project_id", scope.project_ids)
    where.equal("project_id", project_id)
    where.between("month", month_from, month_to)
    return select_rows(db, payment_collection.TABLE, where, "month, project_id")


def _payee_scope(scope: Scope, where: Where) -> None:
    where.within("project_id", scope.project_ids)
    if scope.partner_id is not None:
        where.equal("payee_kind", "channel")
        where.equal("payee_id", scope.partner_id)
    elif scope.consultant_ids is not None:
        where.equal("payee_kind", "consultant")
        where.within("payee_id", scope.consultant_ids)


def commissions(
    db: ViewDB,
    scope: Scope,
    *,
    project_id: str | None = None,
    payee_kind: str | None = None,
    payee_id: str | None = None,
) -> list[dict[str, Any]]:
    """commission_ledger rows: accrued, reversed and payable per project and payee."""
    where = Where()
    _payee_scope(scope, where)
    where.equal_all(project_id=project_id, payee_kind=payee_kind, payee_id=payee_id)
    return select_rows(db, commission_ledger.TABLE, where, "project_id, payee_kind, payee_id")


def commission_entries(
    db: ViewDB,
    scope: Scope,
    *,
    project_id: str | None = None,
    deal_id: str | None = None,
    payee_kind: str | None = None,
    payee_id: str | None = None,
    month: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Page:
    """Every ledger entry in the order it was written."""
    where = Where()
    _payee_scope(scope, where)
    where.equal_all(
        project_id=project_id,
        deal_id=deal_id,
        payee_kind=payee_kind,
        payee_id=payee_id,
        month=month,
    )
    order = ("position", "entry_id")
    return page(db, commission_ledger.ENTRIES, where, order, cursor, limit)


def signing_forecast(
    db: ViewDB,
    scope: Scope,
    now: datetime,
    *,
    project_id: str | None = None,
    days: int = FORECAST_DAYS,
) -> dict[str, Any]:
    """Contracts expected in the next ``days``: deals awaiting signature whose signing
    deadline falls in the window, per China-time day and deal by deal."""
    where = scoped(scope)
    where.equal("project_id", project_id)
    where.within("stage", AWAITING_SIGNATURE)
    where.add("signing_deadline >= %s", ts(db.dialect, now))
    where.add("signing_deadline < %s", ts(db.dialect, now + timedelta(days=days)))
    items = select_rows(db, deal_pipeline.TABLE, where, "signing_deadline, deal_id")
    per_day: dict[str, dict[str, Any]] = {}
    for item in items:
        day = day_of(item["signing_deadline"])
        bucket = per_day.setdefault(day, {"day": day, "deals": 0, "value_fen": 0})
        bucket["deals"] += 1
        bucket["value_fen"] += item["price_fen"] or item["list_price_fen"] or 0
    return {
        "from": now,
        "until": now + timedelta(days=days),
        "days": list(per_day.values()),
        "deals": [_with_age(item, now) for item in items],
    }
