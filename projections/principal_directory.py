"""principal_directory: who is who — name, role, team, partner, projects — for scoping
reads, the staff directory (``GET /v1/principals``) and the names shown beside ids.

A supervisor's team, a manager's projects and a channel agent's partner come from here
when the query endpoints decide what a caller may see. ``principal_directory__projects``
holds one row per granted project so that "the staff of these projects" is an indexed
join rather than a search inside the comma-joined ``project_ids``.
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
        "display_name": "text",
        "role": "text",
        "team_id": "text",
        "partner_id": "text",
        "project_ids": "text",
        "wecom_user_id": "text",
        "revoked": "bool",
        "registered_at": "ts",
    },
    indexes=(("team_id",),),
)
PROJECTS = Table(
    "principal_directory__projects",
    ("project_id", "principal_id"),
    {"project_id": "text", "principal_id": "text"},
)


class PrincipalDirectory:
    name = "principal_directory"
    tables: tuple[Table, ...] = (TABLE, PROJECTS)

    def handles(self, event: Any) -> bool:
        return isinstance(
            event,
            (
                Principal.PrincipalRegistered,
                Principal.PrincipalRevoked,
                Principal.ProfileChanged,
            ),
        )

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        if isinstance(event, Principal.PrincipalRegistered):
            rows.put(
                TABLE.name,
                {
                    "principal_id": event.principal_id,
                    "display_name": event.display_name or event.principal_id,
                    "role": event.role,
                    "team_id": event.team_id,
                    "partner_id": event.partner_id,
                    "project_ids": ",".join(event.project_ids),
                    "wecom_user_id": event.wecom_user_id,
                    "revoked": False,
                    "registered_at": event.timestamp,
                },
            )
            for project_id in event.project_ids:
                rows.put(
                    PROJECTS.name, {"project_id": project_id, "principal_id": event.principal_id}
                )
            return
        row = rows.get(TABLE.name, event.principal_id)
        if row is None:
            return
        if isinstance(event, Principal.ProfileChanged):
            rows.put(
                TABLE.name,
                {
                    **row,
                    "display_name": event.display_name or event.principal_id,
                    "wecom_user_id": event.wecom_user_id,
                },
            )
        else:
            rows.put(TABLE.name, {**row, "revoked": True})
