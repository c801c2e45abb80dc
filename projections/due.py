"""What is due now? The deadline processor's and a departure's questions to the views.

Answers may lag the streams: every command issued from them re-checks its own stream.
"""

from __future__ import annotations

from datetime import datetime

from projections.runtime import ViewDB
from projections.sql import ts

# Buyers in a deal (成交) are never released by the clock (the Client stream refuses it);
# leaving them out keeps them from being re-issued, and crowding out a batch, every run.
NOT_IN_DEAL = (
    "NOT EXISTS (SELECT 1 FROM deal_pipeline d WHERE d.client_id = client_overview.client_id "
    "AND d.status <> 'cancelled')"
)


def expired_reports(db: ViewDB, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(stream_id, report_id) of accepted reports whose validity has run out."""
    rows = db.query(
        "SELECT stream_id, report_id FROM report_log WHERE status = 'accepted' "
        "AND valid_until <= %s ORDER BY valid_until LIMIT %s",
        (ts(db.dialect, now), limit),
    )
    return [(str(s), str(r)) for s, r in rows]


def _owned_due(db: ViewDB, column: str, now: datetime, limit: int) -> list[tuple[str, int]]:
    rows = db.query(
        "SELECT client_id, owner_epoch FROM client_overview WHERE status = 'owned' "
        f"AND {column} <= %s AND {NOT_IN_DEAL} ORDER BY {column} LIMIT %s",
        (ts(db.dialect, now), limit),
    )
    return [(str(c), int(e)) for c, e in rows]


def protection_ended(db: ViewDB, now: datetime, limit: int) -> list[tuple[str, int]]:
    """(client_id, owner_epoch) of owned buyers whose protection has ended."""
    return _owned_due(db, "protected_until", now, limit)


def inactive(db: ViewDB, now: datetime, limit: int) -> list[tuple[str, int]]:
    """(client_id, owner_epoch) of owned buyers past their inactivity deadline."""
    return _owned_due(db, "inactive_after", now, limit)


def departures_in_progress(db: ViewDB) -> list[str]:
    rows = db.query("SELECT consultant_id FROM departures WHERE status = 'in_progress'")
    return [str(r[0]) for r in rows]


def owned_by(db: ViewDB, consultant_id: str, limit: int, *, movable_to_pool: bool) -> list[str]:
    """Buyers a consultant owns; with ``movable_to_pool``, only those not in a deal."""
    stays = f" AND {NOT_IN_DEAL}" if movable_to_pool else ""
    rows = db.query(
        "SELECT client_id FROM client_overview WHERE consultant_id = %s "
        f"AND status = 'owned'{stays} ORDER BY client_id LIMIT %s",
        (consultant_id, limit),
    )
    return [str(r[0]) for r in rows]


def owned_count(db: ViewDB, consultant_id: str) -> int:
    rows = db.query(
        "SELECT COUNT(*) FROM client_overview WHERE consultant_id = %s AND status = 'owned'",
        (consultant_id,),
    )
    return int(rows[0][0])


# ------------------------------------------------ the working day's rules (rule_tasks)

_OWNED = "rule_tasks__clients"
_IN_DEAL = (
    "EXISTS (SELECT 1 FROM deal_pipeline d WHERE d.client_id = c.client_id "
    "AND d.status <> 'cancelled')"
)


def rule_projects(db: ViewDB) -> list[str]:
    """Projects with an owned buyer or a deal in negotiation: where the rules can fire."""
    rows = db.query(
        f"SELECT project_id FROM {_OWNED} WHERE consultant_id IS NOT NULL "
        "UNION SELECT project_id FROM rule_tasks__negotiations WHERE since IS NOT NULL "
        "AND NOT escalated"
    )
    return sorted(str(r[0]) for r in rows)


def dormant(db: ViewDB, project_id: str, cutoff: datetime, limit: int) -> list[tuple[str, int]]:
    """(client_id, owner_epoch) of owned buyers without contact since ``cutoff``, not
    flagged for that stretch yet; buyers in a deal stay out (the stream refuses them)."""
    rows = db.query(
        f"SELECT client_id, owner_epoch FROM {_OWNED} c WHERE project_id = %s "
        "AND consultant_id IS NOT NULL AND last_activity_at <= %s "
        "AND (dormant_as_of IS NULL OR dormant_as_of <> last_activity_at) "
        f"AND NOT {_IN_DEAL} ORDER BY last_activity_at LIMIT %s",
        (project_id, ts(db.dialect, cutoff), limit),
    )
    return [(str(c), int(e)) for c, e in rows]


def escalation_due(
    db: ViewDB, project_id: str, grade: str, cutoff: datetime, limit: int, *, ungraded: bool
) -> list[tuple[str, int]]:
    """(client_id, owner_epoch) of owned buyers of ``grade`` (and the ungraded, with
    ``ungraded``) whose follow-up was due by ``cutoff`` and is not escalated yet."""
    graded = "(grade = %s OR grade IS NULL)" if ungraded else "grade = %s"
    rows = db.query(
        f"SELECT client_id, owner_epoch FROM {_OWNED} WHERE project_id = %s AND {graded} "
        "AND consultant_id IS NOT NULL AND next_follow_up_due <= %s "
        "AND (escalated_due IS NULL OR escalated_due <> next_follow_up_due) "
        "ORDER BY next_follow_up_due LIMIT %s",
        (project_id, grade, ts(db.dialect, cutoff), limit),
    )
    return [(str(c), int(e)) for c, e in rows]


def negotiations_due(db: ViewDB, project_id: str, cutoff: datetime, limit: int) -> list[str]:
    """Deals whose deposit was paid by ``cutoff`` with no contract and no escalation."""
    rows = db.query(
        "SELECT deal_id FROM rule_tasks__negotiations WHERE project_id = %s "
        "AND since IS NOT NULL AND since <= %s AND NOT escalated ORDER BY since LIMIT %s",
        (project_id, ts(db.dialect, cutoff), limit),
    )
    return [str(r[0]) for r in rows]
