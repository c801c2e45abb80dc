"""lookup_audit: every phone lookup (查客) — who, when, at which project, and its outcome:
``found``, ``not_found``, or ``limited`` (refused with 429: the hour's allowance was used)."""

from __future__ import annotations

from typing import Any

from domain.allowance import Allowance
from projections.runtime import Rows, Table

TABLE = Table(
    "lookup_audit",
    ("allowance_id", "version"),
    {
        "allowance_id": "text",
        "version": "int",
        "principal_id": "text",
        "role": "text",
        "project_id": "text",
        "found": "bool",
        "outcome": "text",
        "client_id": "text",
        "request_id": "text",
        "looked_up_at": "ts",
    },
    indexes=(("principal_id", "looked_up_at"), ("project_id", "looked_up_at")),
)


class LookupAudit:
    name = "lookup_audit"
    tables: tuple[Table, ...] = (TABLE,)

    def handles(self, event: Any) -> bool:
        return isinstance(event, Allowance.LookupRecorded | Allowance.LookupLimited)

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        actor = getattr(event, "actor", None) or {}
        limited = isinstance(event, Allowance.LookupLimited)
        found = not limited and event.found
        outcome = "limited" if limited else "found" if found else "not_found"
        rows.put(
            TABLE.name,
            {
                "allowance_id": str(event.originator_id),
                "version": event.originator_version,
                "principal_id": actor.get("id"),
                "role": actor.get("role"),
                "project_id": event.project_id,
                "found": found,
                "outcome": outcome,
                "client_id": str(event.client_id) if found and event.client_id else None,
                "request_id": getattr(event, "correlation_id", None),
                "looked_up_at": event.timestamp,
            },
        )
