"""The working day's questions: what waits for my decision (inbox), what is in the pool
to claim, and what I must do today (my day). Plain SQL over the views, scoped like every
other read; names, buyer names and local times are added by the API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from projections import (
    client_overview,
    client_tags,
    follow_up_tasks,
    pending_decisions,
    protection_board,
)
from projections.queries import Where, select_rows
from projections.runtime import ViewDB
from projections.sql import ts

# What each role decides: supervisors losses and claims; managers everything.
SUPERVISOR_KINDS = ("loss_request", "claim")


def inbox(
    db: ViewDB,
    project_ids: Sequence[str] | None,
    consultant_ids: Sequence[str] | None,
    kinds: Sequence[str],
    *,
    project_id: str | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Open items oldest first (at most ``limit``), and the count of every kind."""
    where = Where()
    where.within("project_id", project_ids)
    where.within("consultant_id", consultant_ids)
    where.within("kind", kinds)
    where.equal("project_id", project_id)
    table = pending_decisions.TABLE
    counts = dict.fromkeys(kinds, 0)
    for kind, n in db.query(
        f"SELECT kind, COUNT(*) FROM {table.name}{where.sql()} GROUP BY kind", where.params
    ):
        counts[str(kind)] = int(n)
    rows = db.query(
        f"SELECT {', '.join(table.columns)} FROM {table.name}{where.sql()} "
        "ORDER BY opened_at, kind, item_id, project_id LIMIT %s",
        (*where.params, limit),
    )
    return [table.from_db(r) for r in rows], counts


def requested_by(db: ViewDB, principal_id: str) -> list[dict[str, Any]]:
    """Items a principal asked for that nobody has decided yet."""
    where = Where()
    where.equal("requested_by", principal_id)
    where.within("kind", ("loss_request", "claim", "dispute", "appeal"))
    return select_rows(db, pending_decisions.TABLE, where, "opened_at, kind, item_id")


def tags(db: ViewDB, client_ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    wanted = sorted(set(client_ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = db.query(
            f"SELECT client_id, tags FROM {client_tags.TABLE.name} "
            f"WHERE client_id IN ({', '.join(['%s'] * len(chunk))})",
            chunk,
        )
        found.update({str(c): client_tags.split(t) for c, t in rows})
    return found


def with_pool_facts(db: ViewDB, items: list[dict[str, Any]], now: datetime) -> None:
    """Tags (客户画像) and whole days in the pool beside each pool row."""
    known = tags(db, [i["client_id"] for i in items if i.get("status") == "pool"])
    for item in items:
        if item.get("status") != "pool":
            continue
        item["tags"] = known.get(item["client_id"], [])
        released = item.get("released_at")
        item["days_in_pool"] = (now - released).days if released is not None else None


def due_tasks(db: ViewDB, consultant_id: str, before: datetime) -> list[dict[str, Any]]:
    where = Where()
    where.equal("consultant_id", consultant_id)
    where.add("due_at IS NOT NULL")
    where.add("due_at < %s", ts(db.dialect, before))
    return select_rows(db, follow_up_tasks.TABLE, where, "due_at, client_id")


def protection_ending(
    db: ViewDB, consultant_id: str, now: datetime, within: timedelta
) -> list[dict[str, Any]]:
    where = Where()
    where.equal("consultant_id", consultant_id)
    where.add("protected_until >= %s", ts(db.dialect, now))
    where.add("protected_until < %s", ts(db.dialect, now + within))
    return select_rows(db, protection_board.TABLE, where, "protected_until, client_id")


def assigned_since(db: ViewDB, consultant_id: str, since: datetime) -> list[dict[str, Any]]:
    where = Where()
    where.equal("consultant_id", consultant_id)
    where.equal("status", "owned")
    where.add("owned_since >= %s", ts(db.dialect, since))
    return select_rows(db, client_overview.TABLE, where, "owned_since, client_id")
