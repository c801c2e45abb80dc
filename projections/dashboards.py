"""Dashboards people read, composed from the BI views at query time: conversion rates,
a manager's one-page summary and the pipeline beside the signing forecast.

Nothing here is a new view: every figure is a sum over rows the views already keep, in
the caller's scope (projects; a supervisor's and consultant's own buyers where a view
has a consultant), so the figures always agree with the per-view endpoints. Days are
China-time days (Asia/Shanghai), as the views record them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, get_args

from domain.deal import AWAITING_SIGNATURE, BEFORE_CONTRACT
from domain.quota import CHINA
from projections import (
    client_overview,
    consultant_activity,
    deal_pipeline,
    follow_up_tasks,
    funnel_daily,
    lost_reasons,
    payment_collection,
    pool_activity,
    report_log,
    rule_tasks,
)
from projections.queries import Scope, Where, scoped, select_rows
from projections.runtime import ViewDB
from projections.sql import ts

Grouping = Literal["project", "channel", "consultant"]
GROUPINGS: tuple[Grouping, ...] = get_args(Grouping)
Period = Literal["day", "week", "month", "all"]
PERIODS: tuple[Period, ...] = get_args(Period)
# Stages a deal has passed subscription (认购) and contract (签约) by.
SUBSCRIBED_OR_LATER = ("subscribed", "contracted", "filed", "delivered", "certified")
CONTRACTED_OR_LATER = ("contracted", "filed", "delivered", "certified")
IN_PROGRESS = BEFORE_CONTRACT  # opened, deposit paid (定金), subscribed (认购)


def period_of(day: str, period: str) -> str:
    """The bucket a China-time day falls in: the day, its ISO week, its month, or all."""
    if period == "day":
        return day
    if period == "month":
        return day[:7]
    if period == "week":
        year, week, _ = date.fromisoformat(day).isocalendar()
        return f"{year}-W{week:02d}"
    return "all"


def rate(part: int, whole: int) -> float | None:
    """A conversion rate to four places; None where nothing entered the stage before."""
    return round(part / whole, 4) if whole else None


def _with_rates(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "lead_to_visit": rate(row["visited"], row["leads"]),
        "visit_to_subscription": rate(row["subscribed"], row["visited"]),
        "subscription_to_contract": rate(row["signed"], row["subscribed"]),
        "lead_to_contract": rate(row["signed"], row["leads"]),
    }


def _day_bounds(where: Where, column: str, day_from: str | None, day_to: str | None) -> None:
    if day_from is not None:
        where.add(f"{column} >= %s", day_from)
    if day_to is not None:
        where.add(f"{column} < %s", day_to)


def conversion(
    db: ViewDB,
    scope: Scope,
    *,
    group_by: str,
    period: str,
    project_id: str | None = None,
    consultant_id: str | None = None,
    day_from: str | None = None,
    day_to: str | None = None,
) -> list[dict[str, Any]]:
    """Report → visit → subscription → contract, per project, channel or consultant and
    period. For channels and projects the stages are counted on the day each happened
    (funnel_daily: reports accepted, first visits, subscriptions, contracts); a walk-in's
    first visit is also their lead (channel ``natural``). For a
    consultant the leads are the buyers who became theirs and the visits their visits
    (consultant_activity); subscriptions and contracts are the deals they opened in the
    period that have reached that stage (deal_pipeline), so a period's rates settle as
    its deals progress."""
    buckets: dict[tuple[str, str, str], dict[str, int]] = {}

    def bucket(project: str, key: str, day: str) -> dict[str, int]:
        found = (project, key, period_of(day, period))
        return buckets.setdefault(
            found, dict.fromkeys(("leads", "visited", "subscribed", "signed"), 0)
        )

    if group_by in ("project", "channel"):
        where = scoped(scope, consultant_column=None)
        where.equal("project_id", project_id)
        _day_bounds(where, "day", day_from, day_to)
        for row in select_rows(db, funnel_daily.TABLE, where, "day"):
            key = row["project_id"] if group_by == "project" else row["partner_id"] or "natural"
            counts = bucket(row["project_id"], key, row["day"])
            counts["leads"] += row["reported"] or 0
            counts["visited"] += row["visited"] or 0
            if not row["partner_id"]:
                # A walk-in (自然到访) has no report: they become a lead by visiting, so a
                # project's rate counts them on both sides and never passes 100%.
                counts["leads"] += row["visited"] or 0
            counts["subscribed"] += row["subscribed"] or 0
            counts["signed"] += row["signed"] or 0
    else:
        where = scoped(scope, partner_column=None)
        where.equal_all(project_id=project_id, consultant_id=consultant_id)
        _day_bounds(where, "day", day_from, day_to)
        for row in select_rows(db, consultant_activity.TABLE, where, "day"):
            counts = bucket(row["project_id"], row["consultant_id"], row["day"])
            counts["leads"] += row["new_clients"] or 0
            counts["visited"] += row["visits"] or 0
        deals = scoped(scope, partner_column=None)
        deals.equal_all(project_id=project_id, consultant_id=consultant_id)
        deals.add("consultant_id IS NOT NULL")
        for deal in select_rows(db, deal_pipeline.TABLE, deals, "opened_at"):
            day = deal["opened_at"].astimezone(CHINA).date().isoformat()
            if (day_from and day < day_from) or (day_to and day >= day_to):
                continue
            counts = bucket(deal["project_id"], deal["consultant_id"], day)
            counts["subscribed"] += deal["stage"] in SUBSCRIBED_OR_LATER
            counts["signed"] += deal["stage"] in CONTRACTED_OR_LATER
    name = {"project": "project_id", "channel": "partner_id", "consultant": "consultant_id"}
    rows = [
        _with_rates({"project_id": p, name[group_by]: k, "period": when, **counts})
        for (p, k, when), counts in sorted(buckets.items())
    ]
    if group_by == "project":
        for row in rows:
            row.pop("partner_id", None)
    return rows


# ------------------------------------------------------------------ summary


def periods(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Today, this week (from Monday) and this month, as China-time instants."""
    local = now.astimezone(CHINA)
    today = datetime.combine(local.date(), time(0), tzinfo=CHINA)
    monday = today - timedelta(days=local.weekday())
    first = today.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    return {
        "today": (today, today + timedelta(days=1)),
        "this_week": (monday, monday + timedelta(days=7)),
        "this_month": (first, next_month),
    }


def _day(moment: datetime) -> str:
    return moment.astimezone(CHINA).date().isoformat()


def _sum(db: ViewDB, table: str, columns: Sequence[str], where: Where) -> dict[str, int]:
    sums = ", ".join(f"COALESCE(SUM({c}), 0)" for c in columns)
    found = db.query(f"SELECT {sums} FROM {table}{where.sql()}", where.params)[0]
    return {c: int(v) for c, v in zip(columns, found, strict=True)}


def _count(db: ViewDB, table: str, where: Where) -> int:
    return int(db.query(f"SELECT COUNT(*) FROM {table}{where.sql()}", where.params)[0][0])


def summary(
    db: ViewDB, scope: Scope, now: datetime, *, project_id: str | None = None
) -> dict[str, Any]:
    """A manager's page: per period the flows, and now the backlog, losses and money."""

    def base(by_consultant: bool = False) -> Where:
        where = scoped(
            scope,
            consultant_column="consultant_id" if by_consultant else None,
            partner_column=None,
        )
        where.equal("project_id", project_id)
        return where

    released = [c for c in pool_activity.TABLE.columns if c.startswith("released_")]
    out: dict[str, Any] = {"as_of": now, "time_zone": "Asia/Shanghai"}
    for name, (start, end) in periods(now).items():
        reports = base()
        reports.add("filed_at >= %s", ts(db.dialect, start))
        reports.add("filed_at < %s", ts(db.dialect, end))
        days = (_day(start), _day(end))
        funnel = base()
        _day_bounds(funnel, "day", *days)
        stages = _sum(db, funnel_daily.TABLE.name, ("visited", "subscribed", "signed"), funnel)
        activity = base(by_consultant=True)
        _day_bounds(activity, "day", *days)
        work = _sum(
            db,
            consultant_activity.TABLE.name,
            ("visits", "new_clients", "follow_ups", "losses", "claims"),
            activity,
        )
        opened = base(by_consultant=True)
        opened.add("opened_at >= %s", ts(db.dialect, start))
        opened.add("opened_at < %s", ts(db.dialect, end))
        pool = base()
        _day_bounds(pool, "day", *days)
        flows = _sum(db, pool_activity.TABLE.name, (*released, "claimed"), pool)
        # Buyers first known in the period (by a report or a visit); a supervisor counts
        # those their team owns now.
        registered = base(by_consultant=True)
        registered.add("registered_at >= %s", ts(db.dialect, start))
        registered.add("registered_at < %s", ts(db.dialect, end))
        out[name] = {
            "from": start,
            "until": end,
            "new_reports": _count(db, report_log.TABLE.name, reports),
            "first_visits": stages["visited"],
            "visits": work["visits"],
            "new_clients": _count(db, client_overview.TABLE.name, registered),
            # Buyers who became a consultant's: visits, claims, transfers, departures.
            "assignments": work["new_clients"],
            "follow_ups": work["follow_ups"],
            "deals_opened": _count(db, deal_pipeline.TABLE.name, opened),
            "subscriptions": stages["subscribed"],
            "contracts": stages["signed"],
            "losses": work["losses"],
            "pool_released": sum(flows[c] for c in released),
            "pool_claimed": flows["claimed"],
        }
    tasks = base(by_consultant=True)
    tasks.add("due_at IS NOT NULL")
    tasks.add("due_at < %s", ts(db.dialect, now))
    raised: dict[str, int] = {}
    for kind in ("follow_up_escalated", "wake_up", "negotiation_escalated"):
        open_tasks = base(by_consultant=True)
        open_tasks.equal_all(kind=kind, status="open")
        raised[kind] = _count(db, rule_tasks.TABLE.name, open_tasks)
    month = now.astimezone(CHINA).strftime("%Y-%m")
    losses = Where()
    losses.within("project_id", scope.project_ids)
    losses.equal_all(project_id=project_id, month=month)
    reasons: dict[str, int] = {}
    for row in select_rows(db, lost_reasons.TABLE, losses, "reason"):
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + int(row["losses"] or 0)
    money = base()
    money.equal("month", month)
    collected = _sum(
        db,
        payment_collection.TABLE.name,
        ("expected_fen", "received_fen", "refunds_due_fen"),
        money,
    )
    signing = base(by_consultant=True)
    signing.within("stage", AWAITING_SIGNATURE)
    signing.add("signing_deadline >= %s", ts(db.dialect, now))
    signing.add("signing_deadline < %s", ts(db.dialect, now + timedelta(days=7)))
    late = base(by_consultant=True)
    late.within("stage", AWAITING_SIGNATURE)
    late.add("signing_deadline < %s", ts(db.dialect, now))
    out["overdue_follow_ups"] = _count(db, follow_up_tasks.TABLE.name, tasks)
    # The rules' open tasks (rule_tasks): escalations per grade, 待激活, stalled deals.
    out["escalated_follow_ups"] = raised["follow_up_escalated"]
    out["dormant_buyers"] = raised["wake_up"]
    out["negotiations_escalated"] = raised["negotiation_escalated"]
    out["top_loss_reasons"] = [
        {"reason": r, "losses": n}
        for r, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:5]
    ]
    out["payments"] = {
        "month": month,
        **collected,
        "outstanding_fen": max(0, collected["expected_fen"] - collected["received_fen"]),
        "signings_due_in_7_days": _count(db, deal_pipeline.TABLE.name, signing),
        "signings_overdue": _count(db, deal_pipeline.TABLE.name, late),
    }
    return out


# --------------------------------------------------------------- pipeline


def pipeline(db: ViewDB, scope: Scope, *, project_id: str | None = None) -> dict[str, Any]:
    """What may become contracts beyond the deadlines in the window: deals in progress
    (opened, deposit, subscription) and owned A-grade buyers without a deal yet."""
    deals = scoped(scope)
    deals.equal("project_id", project_id)
    deals.within("stage", IN_PROGRESS)
    rows = db.query(
        f"SELECT stage, COUNT(*), COALESCE(SUM(COALESCE(price_fen, list_price_fen, 0)), 0) "
        f"FROM {deal_pipeline.TABLE.name}{deals.sql()} GROUP BY stage",
        deals.params,
    )
    by_stage = {str(s): {"deals": int(n), "value_fen": int(v)} for s, n, v in rows}
    buyers = scoped(scope)
    buyers.equal("project_id", project_id)
    buyers.add("status = %s", "owned")
    buyers.add("grade = %s", "A")
    open_deals = scoped(scope)
    open_deals.within("stage", (*IN_PROGRESS, *CONTRACTED_OR_LATER))
    buyers.add(
        f"client_id NOT IN (SELECT client_id FROM {deal_pipeline.TABLE.name}{open_deals.sql()})",
        *open_deals.params,
    )
    return {
        "deals_in_progress": sum(s["deals"] for s in by_stage.values()),
        "deals_in_progress_value_fen": sum(s["value_fen"] for s in by_stage.values()),
        "deals_by_stage": {
            stage: by_stage.get(stage, {"deals": 0, "value_fen": 0}) for stage in IN_PROGRESS
        },
        "a_grade_buyers_without_deal": _count(db, client_overview.TABLE.name, buyers),
    }
