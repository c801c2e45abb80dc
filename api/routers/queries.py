"""Read endpoints over the BI views: filtered, role-scoped, cursor-paginated.

Pass ``?after=<Yingke-Position>`` (or the ``Yingke-After`` header) to read your own
writes: the query waits briefly for the views, or answers 503 with the lag.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from api.authorization import ScopeDep
from api.deps import AppDep, CallerDep, FreshDep, get_container
from api.tabular import TabularDep
from api.validation import Instant, Month
from domain.vocabulary import Grade, ReportStatus
from projections import (
    client_overview,
    dashboards,
    follow_up_tasks,
    people,
    queries,
    report_log,
    rule_tasks,
    workday,
)
from projections.common import day_of
from projections.dashboards import Grouping, Period
from projections.queries import Scope

router = APIRouter(tags=["views"], dependencies=[FreshDep])

Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]
Cursor = Annotated[str | None, Query(description="next_cursor from the previous page")]
Since = Annotated[Instant | None, Query(description="From this instant or day (inclusive)")]
Until = Annotated[Instant | None, Query(description="Up to this instant or day (exclusive)")]


@router.get("/v1/clients")
def list_clients(
    request: Request,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    consultant_id: str | None = None,
    partner_id: str | None = None,
    status: Literal["unowned", "owned", "pool"] | None = None,
    grade: Grade | None = None,
    registered_from: Since = None,
    registered_to: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Any:
    """Buyers (client_overview), oldest first. Consultants see their own, supervisors
    their team's, managers their projects', a channel agent its partner's; phones masked.
    ``status=pool`` is the public pool (公海池) of the caller's projects, for consultants
    and supervisors too (to claim from it), each row with its profile ``tags`` (客户画像)
    and ``days_in_pool`` beside the release reason."""
    container = get_container(request)
    views = container.views
    if status == "pool" and scope.consultant_ids is not None:
        # Nobody owns a pool buyer, so the own and team relations admit every pool buyer
        # of the caller's projects (as api.access.relates does for one buyer).
        scope = Scope(project_ids=scope.project_ids)
    columns = people.named_columns(list(client_overview.TABLE.columns))
    if status == "pool":
        columns += ["tags", "days_in_pool"]

    def fetch(at: str | None, size: int) -> queries.Page:
        result = queries.clients(
            views,
            scope,
            project_id=project_id,
            consultant_id=consultant_id,
            partner_id=partner_id,
            status=status,
            grade=grade,
            registered_from=registered_from,
            registered_to=registered_to,
            cursor=at,
            limit=size,
        )
        workday.with_pool_facts(views, result.items, container.clock())
        return result

    return tab.page(people.named(views, fetch), cursor, limit, columns)


@router.get("/v1/reports")
def list_reports(
    request: Request,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    partner_id: str | None = None,
    status: ReportStatus | None = None,
    client_id: str | None = None,
    filed_from: Since = None,
    filed_to: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Any:
    """Reports (report_log), oldest first; a channel agent sees only its partner's."""
    views = get_container(request).views
    return tab.page(
        lambda at, size: queries.reports(
            views,
            scope,
            project_id=project_id,
            partner_id=partner_id,
            status=status,
            client_id=client_id,
            filed_from=filed_from,
            filed_to=filed_to,
            cursor=at,
            limit=size,
        ),
        cursor,
        limit,
        list(report_log.TABLE.columns),
    )


@router.get("/v1/tasks")
def list_tasks(
    request: Request,
    app: AppDep,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    consultant_id: str | None = None,
    grade: Grade | None = None,
    due_before: Annotated[Instant | None, Query(description="e.g. end of today")] = None,
    escalated: Annotated[
        bool | None,
        Query(description="Escalated to the supervisor: overdue past the grade's escalate_after"),
    ] = None,
    dormant: Annotated[
        bool | None, Query(description="待激活: no contact with the buyer for dormant_after")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Any:
    """Follow-up tasks (跟进任务), due first: by default the caller's own; a supervisor
    sees the team's and filters ``escalated=true`` for the list that needs them. The
    ``escalated`` and ``dormant`` (待激活) flags are set by the deadline processor under
    the project's policy (see ``GET /v1/rule-tasks``)."""
    views, now = get_container(request).views, app.clock()
    return tab.page(
        people.named(
            views,
            lambda at, size: queries.tasks(
                views,
                scope,
                now,
                project_id=project_id,
                consultant_id=consultant_id,
                grade=grade,
                due_before=due_before,
                escalated=escalated,
                dormant=dormant,
                cursor=at,
                limit=size,
            ),
        ),
        cursor,
        limit,
        people.named_columns([*follow_up_tasks.TABLE.columns, "status", "escalated", "dormant"]),
    )


@router.get("/v1/rule-tasks")
def list_rule_tasks(
    request: Request,
    caller: CallerDep,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    consultant_id: str | None = None,
    kind: Literal["wake_up", "follow_up_escalated", "negotiation_escalated"] | None = None,
    status: Annotated[
        Literal["open", "done", "all"], Query(description="open (default), done or all")
    ] = "open",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Any:
    """Tasks the policy's rules raised, oldest first: ``wake_up`` (待激活, the owner's:
    no contact for ``dormant_after``), ``follow_up_escalated`` (the supervisor's: a
    follow-up overdue past its grade's ``escalate_after``) and ``negotiation_escalated``
    (the manager's: a deal in deposit or subscription without a contract for
    ``negotiation_escalation``). Each stays open until what it asks for happens.
    Consultants see their own buyers', supervisors their team's, managers their
    projects' (another's ``consultant_id`` gives an empty page)."""
    views = get_container(request).views
    return tab.page(
        people.named(
            views,
            lambda at, size: queries.raised_tasks(
                views,
                scope,
                project_id=project_id,
                consultant_id=consultant_id,
                kind=kind,
                status=None if status == "all" else status,
                cursor=at,
                limit=size,
            ),
        ),
        cursor,
        limit,
        people.named_columns(list(rule_tasks.TABLE.columns)),
    )


@router.get("/v1/views/funnel")
def funnel(
    request: Request,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    partner_id: str | None = None,
    day_from: Since = None,
    day_to: Until = None,
) -> Any:
    """funnel_daily: reported → visited → subscribed → signed → lost, per day."""
    rows = queries.funnel(
        get_container(request).views,
        scope,
        project_id=project_id,
        partner_id=partner_id,
        day_from=day_from,
        day_to=day_to,
    )
    return tab.rows(rows)


@router.get("/v1/views/channels")
def channels(
    request: Request,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    partner_id: str | None = None,
    day_from: Since = None,
    day_to: Until = None,
) -> Any:
    """channel_performance per project, partner and day."""
    rows = queries.channels(
        get_container(request).views,
        scope,
        project_id=project_id,
        partner_id=partner_id,
        day_from=day_from,
        day_to=day_to,
    )
    return tab.rows(rows)


@router.get("/v1/views/consultants")
def consultants(
    request: Request,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    consultant_id: str | None = None,
    day_from: Since = None,
    day_to: Until = None,
) -> Any:
    """consultant_activity per project, consultant and day."""
    rows = queries.consultants(
        get_container(request).views,
        scope,
        project_id=project_id,
        consultant_id=consultant_id,
        day_from=day_from,
        day_to=day_to,
    )
    return tab.rows(people.with_names(get_container(request).views, rows))


@router.get("/v1/views/protection-board")
def protection_board(
    request: Request,
    app: AppDep,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    consultant_id: str | None = None,
) -> Any:
    """保护期 ending within 3 and 7 days, per consultant and team, as of now."""
    rows = queries.protection(
        get_container(request).views,
        scope,
        app.clock(),
        project_id=project_id,
        consultant_id=consultant_id,
    )
    return tab.rows(people.with_names(get_container(request).views, rows))


@router.get("/v1/views/lost-reasons")
def lost_reasons(
    request: Request,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    month: Annotated[Month | None, Query()] = None,
) -> Any:
    """战败原因 counts per project and month, most frequent first."""
    rows = queries.lost(get_container(request).views, scope, project_id=project_id, month=month)
    return tab.rows(rows)


@router.get("/v1/views/pool")
def pool(
    request: Request,
    scope: ScopeDep,
    tab: TabularDep,
    project_id: str | None = None,
    day_from: Since = None,
    day_to: Until = None,
) -> Any:
    """公海池 flows per project and day: released by reason, claimed, claimed then visited."""
    rows = queries.pool(
        get_container(request).views, scope, project_id=project_id, day_from=day_from, day_to=day_to
    )
    return tab.rows(rows)


@router.get("/v1/views/conversion")
def conversion(
    request: Request,
    caller: CallerDep,
    scope: ScopeDep,
    tab: TabularDep,
    group_by: Annotated[Grouping, Query(description="project, channel (partner) or consultant")],
    period: Annotated[Period, Query(description="China-time day, ISO week, month, or all")] = (
        "month"
    ),
    project_id: str | None = None,
    consultant_id: str | None = None,
    day_from: Since = None,
    day_to: Until = None,
) -> Any:
    """转化率: report (报备) → visit (到访) → subscription (认购) → contract (签约), with
    the rate of each step, per project, channel or consultant and period. A consultant
    reads their own funnel (``group_by=consultant``); a supervisor their team's."""
    if caller.role == "consultant":
        if group_by != "consultant":
            raise HTTPException(403, "a consultant reads their own funnel: group_by=consultant")
        if consultant_id not in (None, caller.id):
            raise HTTPException(403, "a consultant reads only their own funnel")
    rows = dashboards.conversion(
        get_container(request).views,
        scope,
        group_by=group_by,
        period=period,
        project_id=project_id,
        consultant_id=consultant_id,
        day_from=day_of(day_from) if day_from else None,
        day_to=day_of(day_to) if day_to else None,
    )
    if group_by == "consultant":
        rows = people.with_names(get_container(request).views, rows)
    return tab.rows(rows)


@router.get("/v1/views/summary")
def summary(
    request: Request,
    app: AppDep,
    caller: CallerDep,
    scope: ScopeDep,
    project_id: str | None = None,
) -> Any:
    """One page for a manager (经理看板): today, this week and this month in China time
    (new reports, visits, deals, losses, pool activity), and as of now the overdue and
    escalated follow-ups, this month's top loss reasons, collections (回款) and the
    signings coming due."""
    return dashboards.summary(
        get_container(request).views, scope, app.clock(), project_id=project_id
    )
