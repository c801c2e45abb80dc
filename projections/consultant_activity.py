"""consultant_activity: what did each consultant (置业顾问) do, per project and day?

``clients_held`` is the number of buyers owned at the end of that day's last change.
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from projections.common import day_of
from projections.runtime import Rows, Table

COUNTERS = (
    "new_clients",
    "follow_ups",
    "effective_follow_ups",
    "visits",
    "losses",
    "claims",
    "released",
)
TABLE = Table(
    "consultant_activity",
    ("project_id", "consultant_id", "day"),
    {
        "project_id": "text",
        "consultant_id": "text",
        "day": "text",
        "clients_held": "int",
        **dict.fromkeys(COUNTERS, "int"),
    },
    indexes=(("consultant_id", "day"), ("project_id", "day")),
)
HOLDINGS = Table(
    "consultant_activity__held",
    ("project_id", "consultant_id"),
    {"project_id": "text", "consultant_id": "text", "held": "int"},
)
CLIENTS = Table(
    "consultant_activity__clients",
    ("client_id",),
    {"client_id": "text", "project_id": "text", "consultant_id": "text"},
)
_GAINS = (
    Client.OwnershipAwarded,
    Client.OwnershipTransferred,
    Client.ClaimedFromPool,
    Client.OwnershipMigrated,
)


class ConsultantActivity:
    name = "consultant_activity"
    tables: tuple[Table, ...] = (TABLE, HOLDINGS, CLIENTS)

    def handles(self, event: Any) -> bool:
        return isinstance(event, (Client.Event, Client.ClientRegistered))

    def _day(self, rows: Rows, project: str, consultant: str, event: Any, **by: int) -> None:
        held = rows.get(HOLDINGS.name, project, consultant)
        row = rows.bump(
            TABLE.name,
            (project, consultant, day_of(event.timestamp)),
            {**dict.fromkeys(COUNTERS, 0), "clients_held": 0},
            **by,
        )
        row["clients_held"] = held["held"] if held else 0

    def _hold(self, rows: Rows, project: str, consultant: str, change: int) -> None:
        rows.bump(HOLDINGS.name, (project, consultant), {"held": 0}, held=change)

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        client_id = str(event.originator_id)
        if isinstance(event, Client.ClientRegistered):
            rows.put(
                CLIENTS.name,
                {"client_id": client_id, "project_id": event.project_id, "consultant_id": None},
            )
            return
        client = rows.get(CLIENTS.name, client_id)
        if client is None:
            return
        project, owner = client["project_id"], client["consultant_id"]
        if isinstance(event, _GAINS):
            if owner:
                self._hold(rows, project, owner, -1)
                self._day(rows, project, owner, event)
            self._hold(rows, project, event.consultant_id, +1)
            claims = int(isinstance(event, Client.ClaimedFromPool))
            gained = int(owner != event.consultant_id)
            self._day(rows, project, event.consultant_id, event, new_clients=gained, claims=claims)
            rows.put(CLIENTS.name, {**client, "consultant_id": event.consultant_id})
        elif isinstance(event, Client.ReleasedToPool) and owner:
            self._hold(rows, project, owner, -1)
            self._day(rows, project, owner, event, released=1, losses=int(event.reason == "lost"))
            rows.put(CLIENTS.name, {**client, "consultant_id": None})
        elif isinstance(event, Client.FollowUpLogged):
            self._day(
                rows,
                project,
                event.consultant_id,
                event,
                follow_ups=1,
                effective_follow_ups=int(event.effective),
            )
        elif isinstance(event, Client.ClientVisited):
            self._day(rows, project, event.consultant_id, event, visits=1)
