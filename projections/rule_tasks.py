"""rule_tasks: the work the policy's clock hands to people (issue 13).

One row per subject and kind, open until what it asks for happens:
- ``wake_up`` (待激活): the owner's buyer went without activity (a follow-up logged, a
  visit) for ``dormant_after`` (``ClientWentDormant``); done at the next follow-up or
  visit, or when the buyer changes hands or goes to the pool.
- ``follow_up_escalated``: a follow-up overdue past its grade's ``escalate_after``
  (``FollowUpEscalated``), the supervisor's to chase; done when the schedule moves (a
  follow-up was logged) or the buyer changes hands.
- ``negotiation_escalated``: a deal in deposit or subscription without a contract for
  ``negotiation_escalation`` (``NegotiationEscalated``), the project manager's; done at
  the contract or the cancellation.

The two side tables are what the deadline processor reads to find the next candidates:
owned buyers with their last activity and follow-up due time, and deals in negotiation.
The processor re-checks every candidate on its own stream.
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from domain.deal import Deal
from domain.values import ERASED_PHONE_MASK
from projections.runtime import Rows, Table

TABLE = Table(
    "rule_tasks",
    ("subject_id", "kind"),
    {
        "subject_id": "text",  # the client id, or the deal id for negotiation_escalated
        "kind": "text",  # wake_up | follow_up_escalated | negotiation_escalated
        "project_id": "text",
        "client_id": "text",
        "deal_id": "text",
        "consultant_id": "text",  # whose buyer (or deal)
        "assignee_role": "text",  # consultant | supervisor | manager
        "phone_masked": "text",
        "grade": "text",
        "status": "text",  # open | done
        "raised_at": "ts",
        "since": "ts",  # last activity (wake_up), follow-up due (escalation), deposit (deal)
        "closed_at": "ts",
        "closed_by": "text",  # the event type that settled it
        "policy_version": "int",
    },
    indexes=(("project_id", "status", "kind"), ("consultant_id", "status"), ("client_id",)),
    few_per_first_key=True,
)
CLIENTS = Table(
    "rule_tasks__clients",
    ("client_id",),
    {
        "client_id": "text",
        "project_id": "text",
        "phone_masked": "text",
        "consultant_id": "text",
        "owner_epoch": "int",
        "owned_since": "ts",
        "grade": "text",
        "last_follow_up_at": "ts",  # any owner's, as the stream keeps it
        "last_visit_at": "ts",
        "last_activity_at": "ts",  # the current owner's: see Protection.last_activity_at
        "next_follow_up_due": "ts",
        "escalated_due": "ts",
        "dormant_as_of": "ts",
    },
    indexes=(("project_id", "last_activity_at"), ("project_id", "next_follow_up_due")),
)
NEGOTIATIONS = Table(
    "rule_tasks__negotiations",
    ("deal_id",),
    {
        "deal_id": "text",
        "project_id": "text",
        "client_id": "text",
        "consultant_id": "text",
        "since": "ts",  # the deposit; NULL until it is paid
        "escalated": "bool",
    },
    indexes=(("project_id", "since"),),
)
_GAINS = (
    Client.OwnershipAwarded,
    Client.OwnershipTransferred,
    Client.ClaimedFromPool,
    Client.OwnershipMigrated,
)
_CLIENT_KINDS = ("wake_up", "follow_up_escalated")
_DEAL_EVENTS = (
    Deal.DealOpened,
    Deal.DepositPaid,
    Deal.ContractSigned,
    Deal.DealCancelled,
    Deal.DealReattributed,
    Deal.NegotiationEscalated,
)


class RuleTasks:
    name = "rule_tasks"
    tables: tuple[Table, ...] = (TABLE, CLIENTS, NEGOTIATIONS)

    def handles(self, event: Any) -> bool:
        return isinstance(
            event,
            (Client.Event, Client.ClientRegistered, Client.PersonalDataErased, *_DEAL_EVENTS),
        )

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        if isinstance(event, _DEAL_EVENTS):
            self._deal(rows, event)
            return
        client_id = str(event.originator_id)
        if isinstance(event, Client.PersonalDataErased):
            rows.forget_phone(client_id, ERASED_PHONE_MASK)
            return
        if isinstance(event, Client.ClientRegistered):
            rows.put(
                CLIENTS.name,
                {
                    **dict.fromkeys(CLIENTS.columns),
                    "client_id": client_id,
                    "project_id": event.project_id,
                    "phone_masked": event.phone_masked,
                },
            )
            return
        found = rows.get(CLIENTS.name, client_id)
        if found is None:
            return
        client = rows.put(CLIENTS.name, dict(found))
        at, kind = event.timestamp, type(event).__name__
        if isinstance(event, _GAINS):
            client.update(
                consultant_id=event.consultant_id,
                owner_epoch=event.originator_version,
                owned_since=event.since,
                escalated_due=None,
                dormant_as_of=None,
            )
            client["last_activity_at"] = _last_activity(client)
            self._close(rows, client_id, _CLIENT_KINDS, at, kind)
        elif isinstance(event, Client.ReleasedToPool):
            client.update(
                consultant_id=None,
                owner_epoch=None,
                owned_since=None,
                last_activity_at=None,
                next_follow_up_due=None,
                escalated_due=None,
                dormant_as_of=None,
            )
            self._close(rows, client_id, _CLIENT_KINDS, at, kind)
        elif isinstance(event, (Client.FollowUpLogged, Client.FollowUpMigrated)):
            moment = getattr(event, "followed_up_at", at)
            last = client["last_follow_up_at"]
            client["last_follow_up_at"] = max(last, moment) if last else moment
            self._active(rows, client, at, kind)
        elif isinstance(event, Client.ClientVisited):
            client["last_visit_at"] = at
            self._active(rows, client, at, kind)
        elif isinstance(event, Client.ScheduleUpdated):
            client["next_follow_up_due"] = event.next_follow_up_due
            if event.next_follow_up_due != client["escalated_due"]:
                self._close(rows, client_id, ("follow_up_escalated",), at, kind)
        elif isinstance(event, Client.GradeChanged):
            client["grade"] = event.grade
            self._regrade(rows, client_id, event.grade)
        elif isinstance(event, Client.ClientMigrated) and event.grade:
            client["grade"] = event.grade
        elif isinstance(event, Client.ClientWentDormant):
            client["dormant_as_of"] = event.last_activity_at
            self._raise(rows, client, "wake_up", "consultant", event, event.last_activity_at)
        elif isinstance(event, Client.FollowUpEscalated):
            client["escalated_due"] = event.due_at
            self._raise(rows, client, "follow_up_escalated", "supervisor", event, event.due_at)

    def _active(self, rows: Rows, client: dict[str, Any], at: Any, by: str) -> None:
        """Work on an owned buyer: the dormancy clock restarts, a wake-up is done."""
        if client["consultant_id"] is None:
            return
        client["last_activity_at"] = _last_activity(client)
        if client["dormant_as_of"] != client["last_activity_at"]:
            self._close(rows, client["client_id"], ("wake_up",), at, by)

    @staticmethod
    def _raise(
        rows: Rows, client: dict[str, Any], kind: str, role: str, event: Any, since: Any
    ) -> None:
        rows.put(
            TABLE.name,
            {
                "subject_id": client["client_id"],
                "kind": kind,
                "project_id": client["project_id"],
                "client_id": client["client_id"],
                "deal_id": None,
                "consultant_id": event.consultant_id,
                "assignee_role": role,
                "phone_masked": client["phone_masked"],
                "grade": client["grade"],
                "status": "open",
                "raised_at": event.timestamp,
                "since": since,
                "closed_at": None,
                "closed_by": None,
                "policy_version": event.policy_version,
            },
        )

    @staticmethod
    def _close(rows: Rows, subject_id: str, kinds: tuple[str, ...], at: Any, by: str) -> None:
        for kind in kinds:
            task = rows.get(TABLE.name, subject_id, kind)
            if task is not None and task["status"] == "open":
                rows.put(TABLE.name, {**task, "status": "done", "closed_at": at, "closed_by": by})

    @staticmethod
    def _regrade(rows: Rows, client_id: str, grade: str) -> None:
        for kind in _CLIENT_KINDS:
            task = rows.get(TABLE.name, client_id, kind)
            if task is not None and task["status"] == "open":
                rows.put(TABLE.name, {**task, "grade": grade})

    def _deal(self, rows: Rows, event: Any) -> None:
        deal_id = str(event.originator_id)
        if isinstance(event, Deal.DealOpened):
            rows.put(
                NEGOTIATIONS.name,
                {
                    "deal_id": deal_id,
                    "project_id": event.project_id,
                    "client_id": str(event.client_id),
                    "consultant_id": event.consultant_id,
                    "since": None,
                    "escalated": False,
                },
            )
            return
        deal = rows.get(NEGOTIATIONS.name, deal_id)
        if deal is None:
            return
        if isinstance(event, Deal.DepositPaid):
            rows.put(NEGOTIATIONS.name, {**deal, "since": event.timestamp})
        elif isinstance(event, Deal.DealReattributed):
            rows.put(NEGOTIATIONS.name, {**deal, "consultant_id": event.consultant_id})
        elif isinstance(event, (Deal.ContractSigned, Deal.DealCancelled)):
            rows.delete(NEGOTIATIONS.name, deal_id)
            self._close(
                rows, deal_id, ("negotiation_escalated",), event.timestamp, type(event).__name__
            )
        elif isinstance(event, Deal.NegotiationEscalated):
            rows.put(NEGOTIATIONS.name, {**deal, "escalated": True})
            client = rows.get(CLIENTS.name, str(event.client_id)) or {}
            rows.put(
                TABLE.name,
                {
                    "subject_id": deal_id,
                    "kind": "negotiation_escalated",
                    "project_id": event.project_id,
                    "client_id": str(event.client_id),
                    "deal_id": deal_id,
                    "consultant_id": event.consultant_id,
                    "assignee_role": "manager",
                    "phone_masked": client.get("phone_masked"),
                    "grade": client.get("grade"),
                    "status": "open",
                    "raised_at": event.timestamp,
                    "since": event.since,
                    "closed_at": None,
                    "closed_by": None,
                    "policy_version": event.policy_version,
                },
            )


def _last_activity(client: dict[str, Any]) -> Any:
    """As ``Protection.last_activity_at``: the latest of ownership start, a follow-up and
    a visit, counting only those since the current ownership began."""
    since = client["owned_since"]
    seen = (since, client["last_follow_up_at"], client["last_visit_at"])
    return max(m for m in seen if m is not None and m >= since)
