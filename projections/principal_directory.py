"""principal_directory: who is who — role, team, partner, projects — for scoping reads.

A supervisor's team, a manager's projects and a channel agent's partner come from here
when the query endpoints decide what a caller may see.
"""

from __future__ import annotations

from typing import Any

from domain.principal import Principal
from projections.runtime import Rows, Table

TABLE = Table(
    "principal_directory",
    ("principal_id",),
    {
        "principal_id": "text",
        "role": "text",
        "team_id": "text",
        "partner_id": "text",
        "project_ids": "text",
        "revoked": "bool",
        "registered_at": "ts",
    },
    indexes=(("team_id",),),
)


class PrincipalDirectory:
    name = "principal_directory"
    tables: tuple[Table, ...] = (TABLE,)

    def handles(self, event: Any) -> bool:
        return isinstance(event, (Principal.PrincipalRegistered, Principal.PrincipalRevoked))

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        if isinstance(event, Principal.PrincipalRegistered):
            rows.put(
                TABLE.name,
                {
                    "principal_id": event.principal_id,
                    "role": event.role,
                    "team_id": event.team_id,
                    "partner_id": event.partner_id,
                    "project_ids": ",".join(event.project_ids),
                    "revoked": False,
                    "registered_at": event.timestamp,
                },
            )
            return
        row = rows.get(TABLE.name, event.principal_id)
        if row is not None:
            rows.put(TABLE.name, {**row, "revoked": True})
