"""lost_reasons: why are buyers lost (战败原因), per project and month?"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from projections.common import month_of
from projections.runtime import Rows, Table

TABLE = Table(
    "lost_reasons",
    ("project_id", "month", "reason"),
    {"project_id": "text", "month": "text", "reason": "text", "losses": "int"},
)
CLIENTS = Table(
    "lost_reasons__clients", ("client_id",), {"client_id": "text", "project_id": "text"}
)


class LostReasons:
    name = "lost_reasons"
    tables: tuple[Table, ...] = (TABLE, CLIENTS)

    def handles(self, event: Any) -> bool:
        return isinstance(event, (Client.ClientRegistered, Client.LossApproved))

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        client_id = str(event.originator_id)
        if isinstance(event, Client.ClientRegistered):
            rows.put(CLIENTS.name, {"client_id": client_id, "project_id": event.project_id})
            return
        client = rows.get(CLIENTS.name, client_id)
        if client is not None:
            key = (client["project_id"], month_of(event.timestamp), event.loss_reason)
            rows.bump(TABLE.name, key, {"losses": 0}, losses=1)
