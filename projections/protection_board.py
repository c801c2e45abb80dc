"""protection_board: whose buyers' protection (保护期) is about to end?

One row per owned buyer with its protection end; the API and BI group it per
consultant and team into "ending within 3 days" and "within 7 days" as of now.
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from domain.values import ERASED_PHONE_MASK
from projections.runtime import Rows, Table

TABLE = Table(
    "protection_board",
    ("client_id",),
    {
        "client_id": "text",
        "project_id": "text",
        "consultant_id": "text",
        "phone_masked": "text",
        "protected_until": "ts",
        "owned_since": "ts",
        "basis": "text",
    },
    indexes=(("protected_until",), ("consultant_id", "protected_until")),
)
CLIENTS = Table(
    "protection_board__clients",
    ("client_id",),
    {"client_id": "text", "project_id": "text", "phone_masked": "text"},
)
_GAINS = (
    Client.OwnershipAwarded,
    Client.OwnershipTransferred,
    Client.ClaimedFromPool,
    Client.OwnershipMigrated,
)


class ProtectionBoard:
    name = "protection_board"
    tables: tuple[Table, ...] = (TABLE, CLIENTS)

    def handles(self, event: Any) -> bool:
        return isinstance(
            event,
            (
                *_GAINS,
                Client.ClientRegistered,
                Client.ReleasedToPool,
                Client.ProtectionExtended,
                Client.PersonalDataErased,
            ),
        )

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        client_id = str(event.originator_id)
        if isinstance(event, Client.ClientRegistered):
            rows.put(
                CLIENTS.name,
                {
                    "client_id": client_id,
                    "project_id": event.project_id,
                    "phone_masked": event.phone_masked,
                },
            )
        elif isinstance(event, _GAINS):
            client = rows.get(CLIENTS.name, client_id) or {}
            rows.put(
                TABLE.name,
                {
                    "client_id": client_id,
                    "project_id": client.get("project_id"),
                    "consultant_id": event.consultant_id,
                    "phone_masked": client.get("phone_masked"),
                    "protected_until": event.protected_until,
                    "owned_since": event.since,
                    "basis": getattr(event, "basis", "pool_claim"),
                },
            )
        elif isinstance(event, Client.ReleasedToPool):
            if rows.get(TABLE.name, client_id) is not None:
                rows.delete(TABLE.name, client_id)
        elif isinstance(event, Client.ProtectionExtended):
            row = rows.get(TABLE.name, client_id)
            if row is not None:
                rows.put(TABLE.name, {**row, "protected_until": event.protected_until})
        elif isinstance(event, Client.PersonalDataErased):
            for table in (CLIENTS, TABLE):
                row = rows.get(table.name, client_id)
                if row is not None:
                    rows.put(table.name, {**row, "phone_masked": ERASED_PHONE_MASK})
