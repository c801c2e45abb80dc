"""Staff as people read them: the directory (``GET /v1/principals``) and the names that
stand beside consultant and supervisor ids in tasks, lists, the inbox and "my day"."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from projections.principal_directory import PROJECTS, TABLE
from projections.queries import Page, Where, page
from projections.runtime import ViewDB


def directory(
    db: ViewDB,
    project_ids: Sequence[str] | None,
    *,
    role: str | None = None,
    team_id: str | None = None,
    project_id: str | None = None,
    revoked: bool | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """Principals ordered by id; ``project_ids`` (None: every principal) narrows the list
    to those granted at least one of these projects."""
    where = Where()
    for projects in (project_ids, None if project_id is None else (project_id,)):
        if projects is None:
            continue
        if not projects:
            where.add("1 = 0")
            continue
        marks = ", ".join(["%s"] * len(projects))
        where.add(
            f"principal_id IN (SELECT principal_id FROM {PROJECTS.name} "
            f"WHERE project_id IN ({marks}))",
            *projects,
        )
    where.equal_all(role=role, team_id=team_id)
    if revoked is not None:
        where.add("revoked = %s", revoked if db.dialect == "postgres" else int(revoked))
    result = page(db, TABLE, where, ("principal_id",), cursor, limit)
    for item in result.items:
        item["project_ids"] = [p for p in (item["project_ids"] or "").split(",") if p]
    return result


def names(db: ViewDB, ids: Iterable[str | None]) -> dict[str, str]:
    """Display names of the given principal ids; an id the directory lacks maps to itself
    (the bootstrap ``admin``, the deadline processor ``system``)."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    found: dict[str, str] = {}
    # Bounded IN lists: SQLite allows 999 parameters in older builds.
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = db.query(
            f"SELECT principal_id, display_name FROM {TABLE.name} "
            f"WHERE principal_id IN ({', '.join(['%s'] * len(chunk))})",
            chunk,
        )
        found.update({str(p): str(n or p) for p, n in rows})
    return {i: found.get(i, i) for i in wanted}


# Which id column gets which name column when rows are shown to people.
NAMED = {
    "consultant_id": "consultant_name",
    "successor_id": "successor_name",
    "requested_by": "requested_by_name",
    "claimant_id": "claimant_name",
    "opened_by": "opened_by_name",
}


def with_names(db: ViewDB, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``<role>_name`` beside every principal id column the rows carry (one query)."""
    columns = [c for c in NAMED if any(c in item for item in items)]
    if not columns:
        return items
    known = names(db, (item.get(c) for item in items for c in columns))
    for item in items:
        for column in columns:
            if column in item:
                value = item[column]
                item[NAMED[column]] = known.get(value) if value else None
    return items


def named_columns(columns: Sequence[str]) -> list[str]:
    """The export columns of a named list: each id column followed by its name."""
    out: list[str] = []
    for column in columns:
        out.append(column)
        if column in NAMED:
            out.append(NAMED[column])
    return out


def named(
    db: ViewDB, fetch: Callable[[str | None, int], Page]
) -> Callable[[str | None, int], Page]:
    """``fetch`` with names added to every page it returns (JSON and downloads alike)."""

    def fetch_named(cursor: str | None, limit: int) -> Page:
        result = fetch(cursor, limit)
        with_names(db, result.items)
        return result

    return fetch_named
