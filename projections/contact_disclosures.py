"""contact_disclosures: who was shown whose full number, and when. One row per disclosure
(join client_overview on client_id for the project)."""

from __future__ import annotations

from typing import Any

from domain.client import Client
from projections.runtime import Rows, Table

TABLE = Table(
    "contact_disclosures",
    ("client_id", "version"),
    {
        "client_id": "text",
        "version": "int",
        "principal_id": "text",
        "role": "text",
        "request_id": "text",
        "disclosed_at": "ts",
    },
    indexes=(("principal_id", "disclosed_at"), ("disclosed_at",)),
)


class ContactDisclosures:
    name = "contact_disclosures"
    tables: tuple[Table, ...] = (TABLE,)

    def handles(self, event: Any) -> bool:
        return isinstance(event, Client.ContactDisclosed)

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        rows.put(
            TABLE.name,
            {
                "client_id": str(event.originator_id),
                "version": event.originator_version,
                "principal_id": event.principal_id,
                "role": event.role,
                "request_id": getattr(event, "correlation_id", None),
                "disclosed_at": event.timestamp,
            },
        )
