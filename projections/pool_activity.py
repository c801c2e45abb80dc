"""pool_activity: what flows through the public pool (公海池), per project and day?

Released by reason, claimed, and claimed buyers who came back for a visit afterwards
(the pool doing its job).
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from projections.common import day_of
from projections.runtime import Rows, Table

REASONS = ("expired", "inactive", "lost", "departure", "ruling")
COUNTERS = (*(f"released_{r}" for r in REASONS), "claimed", "claimed_then_visited")
TABLE = Table(
    "pool_activity",
    ("project_id", "day"),
    {"project_id": "text", "day": "text", **dict.fromkeys(COUNTERS, "int")},
)
CLIENTS = Table(
    "pool_activity__clients",
    ("client_id",),
    {"client_id": "text", "project_id": "text", "claimed": "bool", "visited_after_claim": "bool"},
)


class PoolActivity:
    name = "pool_activity"
    tables: tuple[Table, ...] = (TABLE, CLIENTS)

    def handles(self, event: Any) -> bool:
        return isinstance(
            event,
            (
                Client.ClientRegistered,
                Client.ReleasedToPool,
                Client.ClaimedFromPool,
                Client.ClientVisited,
            ),
        )

    def _count(self, rows: Rows, project: str, event: Any, column: str) -> None:
        rows.bump(
            TABLE.name,
            (project, day_of(event.timestamp)),
            dict.fromkeys(COUNTERS, 0),
            **{column: 1},
        )

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        client_id = str(event.originator_id)
        if isinstance(event, Client.ClientRegistered):
            rows.put(
                CLIENTS.name,
                {
                    "client_id": client_id,
                    "project_id": event.project_id,
                    "claimed": False,
                    "visited_after_claim": False,
                },
            )
            return
        client = rows.get(CLIENTS.name, client_id)
        if client is None:
            return
        project = client["project_id"]
        if isinstance(event, Client.ReleasedToPool):
            reason = event.reason if event.reason in REASONS else "expired"
            self._count(rows, project, event, f"released_{reason}")
            rows.put(CLIENTS.name, {**client, "claimed": False, "visited_after_claim": False})
        elif isinstance(event, Client.ClaimedFromPool):
            self._count(rows, project, event, "claimed")
            rows.put(CLIENTS.name, {**client, "claimed": True, "visited_after_claim": False})
        elif client["claimed"] and not client["visited_after_claim"]:
            self._count(rows, project, event, "claimed_then_visited")
            rows.put(CLIENTS.name, {**client, "visited_after_claim": True})
