"""pending_decisions: what waits for a supervisor's or a manager's decision (待审批).

One row per open item — a loss request (战败申请), a pool claim waiting for approval
(捞客审批), an open dispute (申诉) or appeal (复议), a departure (离职) still moving
buyers — from the moment it is asked until it is decided. ``consultant_id`` is the
consultant the item is about (the buyer's owner, the claimant, the leaver), so a
supervisor's team can be matched; a departure has one row per project of the leaver.
Free text (dispute reasons, notes) stays in the event store, and so does the phone: the
inbox shows the mask from the buyer's stream, so an erasure leaves nothing of it here.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from domain.client import Client
from domain.departure import Departure
from projections.runtime import Rows, Table

PendingKind = Literal["loss_request", "claim", "dispute", "appeal", "departure"]
KINDS: tuple[PendingKind, ...] = get_args(PendingKind)
TABLE = Table(
    "pending_decisions",
    ("kind", "item_id", "project_id"),
    {
        "kind": "text",
        "item_id": "text",  # request_id | claim_id | dispute_id | the leaver's id
        "project_id": "text",
        "client_id": "text",
        "grade": "text",
        "consultant_id": "text",
        "requested_by": "text",
        "reason": "text",  # a code: the loss reason; the claimant kind of a dispute
        "opened_at": "ts",
    },
    indexes=(("project_id", "opened_at"), ("requested_by",)),
)
CLIENTS = Table(
    "pending_decisions__clients",
    ("client_id",),
    {
        "client_id": "text",
        "project_id": "text",
        "grade": "text",
        "owner_id": "text",
    },
)
LEAVERS = Table(
    "pending_decisions__departures",
    ("consultant_id",),
    {"consultant_id": "text", "project_ids": "text"},
)
_GAINS = (
    Client.OwnershipAwarded,
    Client.OwnershipTransferred,
    Client.ClaimedFromPool,
    Client.OwnershipMigrated,
)


def _actor(event: Any) -> str | None:
    actor = getattr(event, "actor", None) or {}
    found: str | None = actor.get("id")
    return found


class PendingDecisions:
    name = "pending_decisions"
    tables: tuple[Table, ...] = (TABLE, CLIENTS, LEAVERS)

    def handles(self, event: Any) -> bool:
        return isinstance(
            event,
            (
                Client.ClientRegistered,
                Client.GradeChanged,
                Client.ClientMigrated,
                Client.ReleasedToPool,
                Client.LossRequested,
                Client.LossApproved,
                Client.LossRejected,
                Client.ClaimRequested,
                Client.ClaimRejected,
                Client.DisputeOpened,
                Client.DisputeRuled,
                Client.DisputeAppealed,
                Departure.DepartureStarted,
                Departure.DepartureCompleted,
                *_GAINS,
            ),
        )

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        if isinstance(event, (Departure.DepartureStarted, Departure.DepartureCompleted)):
            self._departure(rows, event)
            return
        client_id = str(event.originator_id)
        if isinstance(event, Client.ClientRegistered):
            rows.put(
                CLIENTS.name,
                {
                    "client_id": client_id,
                    "project_id": event.project_id,
                    "grade": None,
                    "owner_id": None,
                },
            )
            return
        client = rows.get(CLIENTS.name, client_id)
        if client is None:
            return
        project = client["project_id"]

        def open_item(kind: str, item_id: str, consultant: str | None, by: str | None) -> None:
            rows.put(
                TABLE.name,
                {
                    "kind": kind,
                    "item_id": item_id,
                    "project_id": project,
                    "client_id": client_id,
                    "grade": client["grade"],
                    "consultant_id": consultant,
                    "requested_by": by,
                    "reason": reason,
                    "opened_at": event.timestamp,
                },
            )

        reason: str | None = None
        if isinstance(event, Client.GradeChanged) or (
            isinstance(event, Client.ClientMigrated) and event.grade
        ):
            rows.put(CLIENTS.name, {**client, "grade": event.grade})
        elif isinstance(event, _GAINS):
            rows.put(CLIENTS.name, {**client, "owner_id": event.consultant_id})
            if isinstance(event, Client.ClaimedFromPool):
                rows.delete(TABLE.name, "claim", event.claim_id, project)
        elif isinstance(event, Client.ReleasedToPool):
            rows.put(CLIENTS.name, {**client, "owner_id": None})
        elif isinstance(event, Client.LossRequested):
            reason = event.reason
            open_item("loss_request", event.request_id, client["owner_id"], _actor(event))
        elif isinstance(event, (Client.LossApproved, Client.LossRejected)):
            rows.delete(TABLE.name, "loss_request", event.request_id, project)
        elif isinstance(event, Client.ClaimRequested):
            open_item("claim", event.claim_id, event.consultant_id, _actor(event))
        elif isinstance(event, Client.ClaimRejected):
            rows.delete(TABLE.name, "claim", event.claim_id, project)
        elif isinstance(event, Client.DisputeOpened):
            reason = event.claimant_kind
            owner = (event.owner_at_opening or {}).get("consultant_id")
            open_item("dispute", event.dispute_id, owner, event.claimant_id)
        elif isinstance(event, Client.DisputeAppealed):
            open_item("appeal", event.dispute_id, client["owner_id"], _actor(event))
        elif isinstance(event, Client.DisputeRuled):
            rows.delete(TABLE.name, "dispute", event.dispute_id, project)
            rows.delete(TABLE.name, "appeal", event.dispute_id, project)

    def _departure(self, rows: Rows, event: Any) -> None:
        leaver = event.consultant_id
        if isinstance(event, Departure.DepartureStarted):
            rows.put(
                LEAVERS.name,
                {"consultant_id": leaver, "project_ids": ",".join(event.project_ids)},
            )
            for project in event.project_ids:
                rows.put(
                    TABLE.name,
                    {
                        "kind": "departure",
                        "item_id": leaver,
                        "project_id": project,
                        "client_id": None,
                        "grade": None,
                        "consultant_id": leaver,
                        "requested_by": _actor(event),
                        "reason": None,
                        "opened_at": event.timestamp,
                    },
                )
            return
        known = rows.get(LEAVERS.name, leaver)
        for project in (known or {}).get("project_ids", "").split(","):
            if project:
                rows.delete(TABLE.name, "departure", leaver, project)
