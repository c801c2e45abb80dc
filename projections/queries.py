"""Read queries over the views: filtered, scoped to what the caller may see, and
cursor-paginated (keyset, so a page never skips or repeats a row as new rows arrive)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from projections import (
    channel_performance,
    client_overview,
    consultant_activity,
    follow_up_tasks,
    funnel_daily,
    lost_reasons,
    pool_activity,
    protection_board,
    report_log,
    rule_tasks,
)
from projections.common import day_of
from projections.runtime import Table, ViewDB
from projections.sql import read_ts, ts


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Scope:
    """What a caller may see; None means no restriction on that axis."""

    project_ids: tuple[str, ...] | None = None
    consultant_ids: tuple[str, ...] | None = None
    partner_id: str | None = None


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass
class Where:
    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def equal(self, column: str, value: Any) -> None:
        if value is not None:
            self.add(f"{column} = %s", value)

    def equal_all(self, **filters: Any) -> None:
        """``column = value`` for each filter given (not None), in the order given."""
        for column, value in filters.items():
            self.equal(column, value)

    def between(self, column: str, low: Any, high: Any) -> None:
        """``low <= column <= high``; a None bound is left open."""
        if low is not None:
            self.add(f"{column} >= %s", low)
        if high is not None:
            self.add(f"{column} <= %s", high)

    def within(self, column: str, values: Sequence[Any] | None) -> None:
        if values is not None:
            if not values:
                self.add("1 = 0")
            else:
                self.add(f"{column} IN ({', '.join(['%s'] * len(values))})", *values)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, width: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this service handed out") from exc
    if not isinstance(values, list) or len(values) != width:
        raise BadCursor("cursor is not one this service handed out")
    if not all(v is None or isinstance(v, str) for v in values):
        raise BadCursor("cursor is not one this service handed out")
    return values


def page(
    db: ViewDB,
    table: Table,
    where: Where,
    order: Sequence[str],
    cursor: str | None,
    limit: int,
) -> Page:
    """Keyset pagination over ``order`` (ascending; the last column must be unique)."""
    if cursor:
        values = decode_cursor(cursor, len(order))
        try:
            converted = [
                ts(db.dialect, datetime.fromisoformat(v))
                if table.columns.get(c) == "ts" and v is not None
                else v
                for c, v in zip(order, values, strict=True)
            ]
        except (TypeError, ValueError) as exc:
            raise BadCursor("cursor is not one this service handed out") from exc
        where.add(f"({', '.join(order)}) > ({', '.join(['%s'] * len(order))})", *converted)
    columns = ", ".join(table.columns)
    rows = db.query(
        f"SELECT {columns} FROM {table.name}{where.sql()} ORDER BY {', '.join(order)} LIMIT %s",
        (*where.params, limit + 1),
    )
    items = [table.from_db(r) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1][c] for c in order]) if len(rows) > limit else None
    return Page(items, next_cursor)


EXPORT_BATCH = 1000


def iterate(
    fetch: Callable[[str | None, int], Page], cursor: str | None = None, batch: int = EXPORT_BATCH
) -> Iterator[dict[str, Any]]:
    """Every row a paged query admits, fetched ``batch`` rows at a time along its keyset:
    an export of any size holds one batch in memory and never skips or repeats a row."""
    while True:
        result = fetch(cursor, batch)
        yield from result.items
        if result.next_cursor is None:
            return
        cursor = result.next_cursor


def _since(
    where: Where,
    db: ViewDB,
    column: str,
    start: datetime | None,
    end: datetime | None,
    kind: str = "ts",
) -> None:
    for value, op in ((start, ">="), (end, "<")):
        if value is not None:
            where.add(f"{column} {op} %s", ts(db.dialect, value) if kind == "ts" else day_of(value))


def scoped(
    scope: Scope,
    consultant_column: str | None = "consultant_id",
    partner_column: str | None = "partner_id",
) -> Where:
    """A Where holding what the caller may see: projects, consultants, partner."""
    where = Where()
    where.within("project_id", scope.project_ids)
    if consultant_column is not None:
        where.within(consultant_column, scope.consultant_ids)
    if scope.partner_id is not None:
        where.equal(partner_column or "partner_id", scope.partner_id)
    return where


def select_rows(db: ViewDB, table: Table, where: Where, order: str) -> list[dict[str, Any]]:
    """Every row of ``table`` that ``where`` admits, ordered by ``order`` (no paging)."""
    rows = db.query(
        f"SELECT {', '.join(table.columns)} FROM {table.name}{where.sql()} ORDER BY {order}",
        where.params,
    )
    return [table.from_db(r) for r in rows]


def clients(
    db: ViewDB,
    scope: Scope,
    *,
    project_id: str | None = None,
    consultant_id: str | None = None,
    partner_id: str | None = None,
    status: str | None = None,
    grade: str | None = None,
    registered_from: datetime | None = None,
    registered_to: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    where = scoped(scope)
    where.equal_all(
        project_id=project_id,
        consultant_id=consultant_id,
        partner_id=partner_id,
        status=status,
        grade=grade,
    )
    _since(where, db, "registered_at", registered_from, registered_to)
    return page(db, client_overview.TABLE, where, ("registered_at", "client_id"), cursor, limit)


def reports(
    db: ViewDB,
    scope: Scope,
    *,
    project_id: str | None = None,
    partner_id: str | None = None,
    status: str | None = None,
    client_id: str | None = None,
    filed_from: datetime | None = None,
    filed_to: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    where = scoped(scope, consultant_column=None)
    if scope.consultant_ids is not None:
        # Staff who see only some buyers see the reports about those buyers.
        marks = ", ".join(["%s"] * len(scope.consultant_ids)) or "NULL"
        where.add(
            f"client_id IN (SELECT client_id FROM {client_overview.TABLE.name} "
            f"WHERE consultant_id IN ({marks}))",
            *scope.consultant_ids,
        )
    where.equal_all(
        project_id=project_id, partner_id=partner_id, status=status, client_id=client_id
    )
    _since(where, db, "filed_at", filed_from, filed_to)
    return page(db, report_log.TABLE, where, ("filed_at", "report_id"), cursor, limit)


def _open_rule_task(kind: str, subject: str) -> str:
    """SQL: the row of ``subject`` (a qualified column) has an open rule task of ``kind``
    (kinds are this module's constants, never caller input)."""
    return (
        f"EXISTS (SELECT 1 FROM {rule_tasks.TABLE.name} r WHERE r.subject_id = {subject} "
        f"AND r.kind = '{kind}' AND r.status = 'open')"
    )


def open_rule_tasks(db: ViewDB, subject_ids: Sequence[str]) -> dict[str, set[str]]:
    """subject id → the kinds of its open rule tasks (待激活, escalations)."""
    if not subject_ids:
        return {}
    marks = ", ".join(["%s"] * len(subject_ids))
    rows = db.query(
        f"SELECT subject_id, kind FROM {rule_tasks.TABLE.name} "
        f"WHERE status = 'open' AND subject_id IN ({marks})",
        tuple(subject_ids),
    )
    found: dict[str, set[str]] = {}
    for subject, kind in rows:
        found.setdefault(str(subject), set()).add(str(kind))
    return found


def tasks(
    db: ViewDB,
    scope: Scope,
    now: datetime,
    *,
    project_id: str | None = None,
    consultant_id: str | None = None,
    grade: str | None = None,
    due_before: datetime | None = None,
    escalated: bool | None = None,
    dormant: bool | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """Follow-up tasks; ``escalated`` and ``dormant`` (待激活) are the open rule tasks the
    deadline processor raised under the project's policy (``escalate_after`` per grade,
    ``dormant_after``), not a fixed age computed here."""
    where = scoped(scope, partner_column=None)
    where.add("due_at IS NOT NULL")
    where.equal_all(project_id=project_id, consultant_id=consultant_id, grade=grade)
    if due_before is not None:
        where.add("due_at < %s", ts(db.dialect, due_before))
    subject = f"{follow_up_tasks.TABLE.name}.client_id"
    for flag, kind in ((escalated, "follow_up_escalated"), (dormant, "wake_up")):
        if flag is not None:
            where.add(("" if flag else "NOT ") + _open_rule_task(kind, subject))
    result = page(db, follow_up_tasks.TABLE, where, ("due_at", "client_id"), cursor, limit)
    flags = open_rule_tasks(db, [item["client_id"] for item in result.items])
    for item in result.items:
        kinds = flags.get(item["client_id"], set())
        item.update(task_status(item["due_at"], now))
        item.update(escalated="follow_up_escalated" in kinds, dormant="wake_up" in kinds)
    return result


def task_status(due_at: datetime, now: datetime) -> dict[str, Any]:
    """A task is due until its time passes, then overdue (escalation is a rule task)."""
    return {"status": "overdue" if due_at <= now else "due"}


def raised_tasks(
    db: ViewDB,
    scope: Scope,
    *,
    project_id: str | None = None,
    consultant_id: str | None = None,
    kind: str | None = None,
    status: str | None = "open",
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """The tasks the policy's rules raised (rule_tasks), oldest first."""
    where = scoped(scope, partner_column=None)
    where.equal_all(project_id=project_id, consultant_id=consultant_id, kind=kind, status=status)
    order = ("raised_at", "subject_id", "kind")
    return page(db, rule_tasks.TABLE, where, order, cursor, limit)


def daily(
    db: ViewDB,
    table: Table,
    scope: Scope,
    filters: dict[str, Any],
    day_from: datetime | None,
    day_to: datetime | None,
    *,
    by_consultant: bool = False,
    by_partner: bool = False,
) -> list[dict[str, Any]]:
    """Rows of a per-day view, scoped and filtered, in day order."""
    where = scoped(
        scope,
        consultant_column="consultant_id" if by_consultant else None,
        partner_column="partner_id" if by_partner else None,
    )
    if not by_partner and scope.partner_id is not None:
        where.add("1 = 0")  # a channel sees no per-consultant or pool figures
    where.equal_all(**filters)
    _since(where, db, "day", day_from, day_to, kind="day")
    return select_rows(db, table, where, ", ".join(table.key))


def funnel(
    db: ViewDB,
    scope: Scope,
    *,
    project_id: str | None = None,
    partner_id: str | None = None,
    day_from: datetime | None = None,
    day_to: datetime | None = None,
) -> list[dict[str, Any]]:
    filters = {"project_id": project_id, "partner_id": partner_id}
    return daily(db, funnel_daily.TABLE, scope, filters, day_from, day_to, by_partner=True)


def channels(
    db: ViewDB,
    scope: Scope,
    *,
    project_id: str | None = None,
    partner_id: str | None = None,
    day_from: datetime | None = None,
    day_to: datetime | None = None,
) -> list[dict[str, Any]]:
    filters = {"project_id": project_id, "partner_id": partner_id}
    return daily(db, channel_performance.TABLE, scope, filters, day_from, day_to, by_partner=True)


def consultants(
    db: ViewDB,
    scope: Scope,
    *,
    project_id: str | None = None,
    consultant_id: str | None = None,
    day_from: datetime | None = None,
    day_to: datetime | None = None,
) -> list[dict[str, Any]]:
    filters = {"project_id": project_id, "consultant_id": consultant_id}
    return daily(
        db, consultant_activity.TABLE, scope, filters, day_from, day_to, by_consultant=True
    )


def lost(
    db: ViewDB, scope: Scope, *, project_id: str | None = None, month: str | None = None
) -> list[dict[str, Any]]:
    where = Where()
    where.within("project_id", scope.project_ids)
    where.equal_all(project_id=project_id, month=month)
    return select_rows(db, lost_reasons.TABLE, where, "month, project_id, losses DESC, reason")


def pool(
    db: ViewDB,
    scope: Scope,
    *,
    project_id: str | None = None,
    day_from: datetime | None = None,
    day_to: datetime | None = None,
) -> list[dict[str, Any]]:
    return daily(db, pool_activity.TABLE, scope, {"project_id": project_id}, day_from, day_to)


def protection(
    db: ViewDB,
    scope: Scope,
    now: datetime,
    *,
    project_id: str | None = None,
    consultant_id: str | None = None,
) -> list[dict[str, Any]]:
    """Per consultant (and team): owned buyers whose protection ends within 3 and 7 days,
    and how many of those are dormant (待激活)."""
    where = scoped(scope, partner_column=None)
    where.equal_all(project_id=project_id, consultant_id=consultant_id)
    where.add("protected_until >= %s", ts(db.dialect, now))
    where.add("protected_until < %s", ts(db.dialect, now + timedelta(days=7)))
    in3 = ts(db.dialect, now + timedelta(days=3))
    table = protection_board.TABLE.name
    rows = db.query(
        "SELECT b.project_id, b.consultant_id, d.team_id, "
        "SUM(CASE WHEN b.protected_until < %s THEN 1 ELSE 0 END), COUNT(*), "
        f"MIN(b.protected_until), SUM(CASE WHEN {_open_rule_task('wake_up', 'b.client_id')} "
        f"THEN 1 ELSE 0 END) FROM (SELECT * FROM {table}{where.sql()}) b "
        "LEFT JOIN principal_directory d ON d.principal_id = b.consultant_id "
        "GROUP BY b.project_id, b.consultant_id, d.team_id "
        "ORDER BY b.project_id, b.consultant_id",
        (in3, *where.params),
    )
    return [
        {
            "project_id": p,
            "consultant_id": c,
            "team_id": t,
            "ending_within_3_days": int(n3),
            "ending_within_7_days": int(n7),
            "first_ending_at": read_ts(first),
            # Of those, 待激活: nobody reached them for dormant_after — the ones to save.
            "dormant": int(asleep or 0),
        }
        for p, c, t, n3, n7, first, asleep in rows
    ]


def team_members(db: ViewDB, team_id: str) -> tuple[str, ...]:
    rows = db.query("SELECT principal_id FROM principal_directory WHERE team_id = %s", (team_id,))
    return tuple(str(r[0]) for r in rows)
