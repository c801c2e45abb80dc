"""lookup_audit: every phone lookup (查客) — who, when, at which project, and its outcome:
``found``, ``not_found``, or ``limited`` (refused with 429: the allowance was used).

A client-register import checks phones too (``via = 'import'``): one ``checked`` row per
run with the number of ``rows`` it checked (a dry run too), one ``found`` row per buyer it
named as already here (``duplicate_client``), ``limited`` when it was refused for that."""

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
        "via": "text",  # lookup | import
        "rows": "int",  # an import's rows checked (null for a lookup)
    },
    indexes=(("principal_id", "looked_up_at"), ("project_id", "looked_up_at")),
)

_LOOKUP = (Allowance.LookupRecorded, Allowance.LookupLimited)
_IMPORT = (Allowance.ImportChecked, Allowance.ImportClash, Allowance.ImportLimited)


def _outcome(event: Any) -> tuple[str, bool, Any]:
    """(outcome, found, client_id) of one recorded lookup or import check."""
    if isinstance(event, Allowance.LookupLimited | Allowance.ImportLimited):
        return "limited", False, None
    if isinstance(event, Allowance.ImportChecked):
        return "checked", False, None
    if isinstance(event, Allowance.ImportClash) or event.found:
        return "found", True, event.client_id
    return "not_found", False, None


class LookupAudit:
    name = "lookup_audit"
    tables: tuple[Table, ...] = (TABLE,)

    def handles(self, event: Any) -> bool:
        return isinstance(event, _LOOKUP + _IMPORT)

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        actor = getattr(event, "actor", None) or {}
        outcome, found, client_id = _outcome(event)
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
                "client_id": str(client_id) if client_id else None,
                "request_id": getattr(event, "correlation_id", None),
                "looked_up_at": event.timestamp,
                "via": "import" if isinstance(event, _IMPORT) else "lookup",
                "rows": getattr(event, "rows", None),
            },
        )
