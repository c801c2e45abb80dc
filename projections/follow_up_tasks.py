"""follow_up_tasks: which buyers must each consultant call, and by when? (跟进任务)

One row per owned buyer with the next follow-up due. Whether a task is "due" or
"overdue", and escalated to the supervisor (overdue by more than a day), depends on
the moment you ask: compare ``due_at`` with now (the API does; so can BI).
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from domain.values import ERASED_PHONE_MASK
from projections.runtime import Rows, Table

TABLE = Table(
    "follow_up_tasks",
    ("client_id",),
    {
        "client_id": "text",
        "project_id": "text",
        "consultant_id": "text",
        "phone_masked": "text",
        "grade": "text",
        "due_at": "ts",
        "basis": "text",  # first_follow_up | cadence_A|B|C | consultant_request
        "owned_since": "ts",
        "protected_until": "ts",
        "last_follow_up_at": "ts",
    },
    indexes=(("consultant_id", "due_at"), ("project_id", "due_at")),
)
CLIENTS = Table(
    "follow_up_tasks__clients",
    ("client_id",),
    {
        "client_id": "text",
        "project_id": "text",
        "phone_masked": "text",
        "grade": "text",
        "last_follow_up_at": "ts",
    },
)
_GAINS = (
    Client.OwnershipAwarded,
    Client.OwnershipTransferred,
    Client.ClaimedFromPool,
    Client.OwnershipMigrated,
)


class FollowUpTasks:
    name = "follow_up_tasks"
    tables: tuple[Table, ...] = (TABLE, CLIENTS)

    def handles(self, event: Any) -> bool:
        return isinstance(event, (Client.Event, Client.ClientRegistered))

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        client_id = str(event.originator_id)
        if isinstance(event, Client.ClientRegistered):
            rows.put(
                CLIENTS.name,
                {
                    "client_id": client_id,
                    "project_id": event.project_id,
                    "phone_masked": event.phone_masked,
                    "grade": None,
                    "last_follow_up_at": None,
                },
            )
            return
        client = rows.get(CLIENTS.name, client_id)
        if client is None:
            return
        task = rows.get(TABLE.name, client_id)
        if isinstance(event, _GAINS):
            task = rows.put(
                TABLE.name,
                {
                    "client_id": client_id,
                    "project_id": client["project_id"],
                    "consultant_id": event.consultant_id,
                    "phone_masked": client["phone_masked"],
                    "grade": client["grade"],
                    "due_at": None,
                    "basis": None,
                    "owned_since": event.since,
                    "protected_until": event.protected_until,
                    "last_follow_up_at": client["last_follow_up_at"],
                },
            )
        elif isinstance(event, Client.ReleasedToPool):
            if task is not None:
                rows.delete(TABLE.name, client_id)
        elif isinstance(event, Client.FollowUpMigrated):
            rows.put(CLIENTS.name, {**client, "last_follow_up_at": event.followed_up_at})
        elif isinstance(event, Client.ClientMigrated) and event.grade:
            rows.put(CLIENTS.name, {**client, "grade": event.grade})
        elif isinstance(event, Client.GradeChanged):
            rows.put(CLIENTS.name, {**client, "grade": event.grade})
            if task is not None:
                rows.put(TABLE.name, {**task, "grade": event.grade})
        elif isinstance(event, Client.PersonalDataErased):
            rows.put(CLIENTS.name, {**client, "phone_masked": ERASED_PHONE_MASK})
            if task is not None:
                rows.put(TABLE.name, {**task, "phone_masked": ERASED_PHONE_MASK})
        elif isinstance(event, Client.FollowUpLogged):
            rows.put(CLIENTS.name, {**client, "last_follow_up_at": event.timestamp})
            if task is not None:
                rows.put(TABLE.name, {**task, "last_follow_up_at": event.timestamp})
        elif task is not None and isinstance(event, Client.ScheduleUpdated):
            rows.put(TABLE.name, {**task, "due_at": event.next_follow_up_due, "basis": event.basis})
        elif task is not None and isinstance(event, Client.ProtectionExtended):
            rows.put(TABLE.name, {**task, "protected_until": event.protected_until})
