"""notifications: the outbox of what each person is to be told, derived from events.

A view like the others (ADR 0015), so it is built by whatever follows the log — the
follower inside ``yingke serve``, ``yingke projections``, or ``yingke consume reminders``
from Kafka — and a position in ``projection_tracking`` makes every event count once.
Delivery is not its business: ``yingke.notify`` owns ``notification_delivery`` and never
writes here, so a rebuild of this view cannot make anything be sent twice (the
notification ids are the same; what was delivered stays delivered).

What is planned, for whom:
- follow-up due / overdue (the owner) from ``ScheduleUpdated``; protection ending (the
  owner) from every change of owner or protection end. ``due_at`` is the deadline
  itself: how early to warn is the sender's setting (YINGKE_REMINDER_DUE_LEAD, …), so
  changing it needs no rebuild.
- approval requested (supervisors of the requester's team in the project, else the
  project's managers) and decided (the requester) for losses and pool claims;
- dispute opened and appealed (the project's managers, who rule) and ruled (the opener
  and the owner at opening);
- what the policy's rules raise when the deadline processor fires them: a follow-up
  escalated past its grade's ``escalate_after`` (the owner's supervisors, else the
  managers), a buyer gone dormant (待激活, the owner), a negotiation stalled without a
  contract (the project's managers).
Free text (review comments, dispute reasons) stays out: the public contract withholds
it, and a view built from Kafka must equal the one built from the store.
A deadline that moves withdraws the earlier notification (``cancelled``); one that stays
where it was keeps its id, so nobody hears the same thing twice. Nobody to address
(no supervisor, no manager) leaves ``recipient_id`` empty: the group webhook gets it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from domain.client import Client
from domain.deal import Deal
from domain.principal import Principal
from domain.values import ERASED_PHONE_MASK
from projections.runtime import Row, Rows, Table

NAMESPACE = uuid.UUID("a4f0c9d2-6f1e-5b7a-9c3d-2e8b1f4a6c55")

NOTIFICATIONS = Table(
    "notifications",
    ("notification_id",),
    {
        "notification_id": "text",
        "kind": "text",
        "project_id": "text",
        "client_id": "text",
        "recipient_id": "text",  # a principal; empty: only the group can be told
        "audience": "text",  # owner | supervisor | manager | requester | party
        "due_at": "ts",  # the moment the notice is about (deadline, or when it happened)
        "facts": "text",  # JSON: what the template needs (masked phone, reason, …)
        "event_id": "text",  # the event that planned it: "<stream>:<version>"
        "position": "int",
        "created_at": "ts",
        "cancelled": "bool",
    },
    indexes=(("cancelled", "due_at"), ("recipient_id", "due_at")),
)
# Per buyer and kind of deadline: the notifications standing for it now.
SLOTS = Table(
    "notification_slots",
    ("client_id", "kind"),
    {"client_id": "text", "kind": "text", "due_at": "ts", "ids": "text", "recipients": "text"},
    few_per_first_key=True,
)
SUBJECTS = Table(
    "notification_subjects",
    ("client_id",),
    {
        "client_id": "text",
        "project_id": "text",
        "phone_masked": "text",
        "consultant_id": "text",
        "grade": "text",
        "protected_until": "ts",
    },
)
# Who asked for what: a loss request, a pool claim, a dispute (its opener and the owner).
REQUESTS = Table(
    "notification_requests",
    ("client_id", "request_id"),
    {"client_id": "text", "request_id": "text", "requester_id": "text", "other_id": "text"},
    few_per_first_key=True,
)
PEOPLE = Table(
    "notification_people",
    ("principal_id",),
    {
        "principal_id": "text",
        "role": "text",
        "team_id": "text",
        "project_ids": "text",
        "revoked": "bool",
    },
)
# Members per group key: "supervisors:<team>" and "managers:<project>".
GROUPS = Table("notification_groups", ("group_key",), {"group_key": "text", "members": "text"})

_GAINS = (
    Client.OwnershipAwarded,
    Client.OwnershipTransferred,
    Client.ClaimedFromPool,
    Client.OwnershipMigrated,
)
_FOLLOW_UP = ("follow_up_due", "follow_up_overdue")


def notification_id(event_id: str, kind: str, recipient_id: str | None) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{event_id}:{kind}:{recipient_id or '-'}"))


def _csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


class NotificationOutbox:
    name = "notification_outbox"
    tables: tuple[Table, ...] = (NOTIFICATIONS, SLOTS, SUBJECTS, REQUESTS, PEOPLE, GROUPS)

    def handles(self, event: Any) -> bool:
        return isinstance(
            event,
            (
                Client.Event,
                Client.ClientRegistered,
                Client.PersonalDataErased,
                Principal.PrincipalRegistered,
                Principal.PrincipalRevoked,
                Deal.NegotiationEscalated,
            ),
        )

    # ------------------------------------------------------------------ people

    def _person(self, rows: Rows, event: Any) -> None:
        if isinstance(event, Principal.PrincipalRegistered):
            rows.put(
                PEOPLE.name,
                {
                    "principal_id": event.principal_id,
                    "role": event.role,
                    "team_id": event.team_id,
                    "project_ids": ",".join(event.project_ids),
                    "revoked": False,
                },
            )
            for key in self._group_keys(event.role, event.team_id, event.project_ids):
                group = rows.upsert(GROUPS.name, (key,), {"members": ""})
                group["members"] = ",".join(sorted({*_csv(group["members"]), event.principal_id}))
            return
        person = rows.get(PEOPLE.name, event.principal_id)
        if person is None:
            return
        rows.put(PEOPLE.name, {**person, "revoked": True})
        for key in self._group_keys(person["role"], person["team_id"], _csv(person["project_ids"])):
            group = rows.upsert(GROUPS.name, (key,), {"members": ""})
            group["members"] = ",".join(
                m for m in _csv(group["members"]) if m != person["principal_id"]
            )

    @staticmethod
    def _group_keys(role: str, team_id: str | None, project_ids: list[str]) -> list[str]:
        if role == "supervisor" and team_id:
            return [f"supervisors:{team_id}"]
        if role == "manager":
            return [f"managers:{p}" for p in project_ids]
        return []

    def _members(self, rows: Rows, key: str) -> list[str | None]:
        group = rows.get(GROUPS.name, key)
        return list(_csv(group["members"])) if group else []

    def _approvers(
        self, rows: Rows, project_id: str, consultant_id: str | None
    ) -> list[str | None]:
        """Supervisors of the consultant's team in the project, else its managers."""
        person = rows.get(PEOPLE.name, consultant_id) if consultant_id else None
        if person is not None and person["team_id"]:
            found: list[str | None] = [
                m
                for m in self._members(rows, f"supervisors:{person['team_id']}")
                if project_id in _csv((rows.get(PEOPLE.name, m) or {}).get("project_ids"))
            ]
            if found:
                return found
        return self._members(rows, f"managers:{project_id}")

    # ----------------------------------------------------------------- buyers

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        if isinstance(event, (Principal.PrincipalRegistered, Principal.PrincipalRevoked)):
            self._person(rows, event)
            return
        if isinstance(event, Deal.NegotiationEscalated):
            self._negotiation(rows, event, position)
            return
        client_id = str(event.originator_id)
        if isinstance(event, Client.PersonalDataErased):
            rows.forget_phone(client_id, ERASED_PHONE_MASK)
            return
        if isinstance(event, Client.ClientRegistered):
            rows.put(
                SUBJECTS.name,
                {
                    "client_id": client_id,
                    "project_id": event.project_id,
                    "phone_masked": event.phone_masked,
                    "consultant_id": None,
                    "grade": None,
                    "protected_until": None,
                },
            )
            return
        subject = rows.get(SUBJECTS.name, client_id)
        if subject is None:
            return
        plan = _Plan(rows, subject, event, position)
        if isinstance(event, _GAINS):
            subject["consultant_id"] = event.consultant_id
            subject["protected_until"] = event.protected_until
            rows.put(SUBJECTS.name, subject)
            gainer: list[str | None] = [event.consultant_id]
            plan.deadline("protection_expiring", event.protected_until, gainer)
            if isinstance(event, Client.ClaimedFromPool) and event.approved_by:
                # A claim that waited for approval: its claimant hears it passed. (A gain,
                # so this branch sees it first; the decided branch below only rejects.)
                self._decided(plan, rows, client_id, "claim", event.claim_id, True, event)
        elif isinstance(event, Client.ProtectionExtended):
            subject["protected_until"] = event.protected_until
            rows.put(SUBJECTS.name, subject)
            plan.deadline("protection_expiring", event.protected_until, self._owner(subject))
        elif isinstance(event, Client.ScheduleUpdated):
            due = event.next_follow_up_due
            if due is None:
                for kind in _FOLLOW_UP:
                    plan.withdraw(kind)
                return
            owner: list[str | None] = self._owner(subject)
            plan.deadline("follow_up_due", due, owner)
            plan.deadline("follow_up_overdue", due, owner)
        elif isinstance(event, Client.FollowUpEscalated):
            plan.tell(
                "follow_up_escalated",
                self._approvers(rows, subject["project_id"], event.consultant_id) or [None],
                "supervisor",
                consultant_id=event.consultant_id,
                deadline=event.due_at.isoformat(),
            )
        elif isinstance(event, Client.ClientWentDormant):
            plan.tell(
                "dormant_buyer",
                [event.consultant_id],
                "owner",
                consultant_id=event.consultant_id,
                last_activity_at=event.last_activity_at.isoformat(),
            )
        elif isinstance(event, Client.GradeChanged):
            rows.put(SUBJECTS.name, {**subject, "grade": event.grade})
        elif isinstance(event, (Client.ReleasedToPool, Client.ProtectionExpired)):
            for kind in (*_FOLLOW_UP, "protection_expiring"):
                plan.withdraw(kind)
            if isinstance(event, Client.ReleasedToPool):
                rows.put(SUBJECTS.name, {**subject, "consultant_id": None})
        elif isinstance(event, Client.LossRequested):
            self._asked(rows, client_id, event.request_id, _actor(event))
            plan.tell(
                "approval_requested",
                self._approvers(rows, subject["project_id"], _actor(event)) or [None],
                "supervisor",
                request="loss",
                request_id=event.request_id,
                reason=event.reason,
                requester_id=_actor(event),
            )
        elif isinstance(event, (Client.LossApproved, Client.LossRejected)):
            approved = isinstance(event, Client.LossApproved)
            self._decided(plan, rows, client_id, "loss", event.request_id, approved, event)
        elif isinstance(event, Client.ClaimRequested):
            self._asked(rows, client_id, event.claim_id, event.consultant_id)
            plan.tell(
                "approval_requested",
                self._approvers(rows, subject["project_id"], event.consultant_id) or [None],
                "supervisor",
                request="claim",
                request_id=event.claim_id,
                requester_id=event.consultant_id,
            )
        elif isinstance(event, Client.ClaimRejected):
            self._decided(plan, rows, client_id, "claim", event.claim_id, False, event)
        elif isinstance(event, Client.DisputeOpened):
            respondent = event.owner_at_opening.get("consultant_id")
            self._asked(rows, client_id, event.dispute_id, _actor(event), respondent)
            plan.tell(
                "dispute_opened",
                self._members(rows, f"managers:{subject['project_id']}") or [None],
                "manager",
                dispute_id=event.dispute_id,
                claimant_kind=event.claimant_kind,
                claimant_id=event.claimant_id,
            )
        elif isinstance(event, Client.DisputeAppealed):
            # The appeal (复议) is ruled again, finally, by the project's managers.
            plan.tell(
                "appeal_opened",
                self._members(rows, f"managers:{subject['project_id']}") or [None],
                "manager",
                dispute_id=event.dispute_id,
                appellant_id=_actor(event),
            )
        elif isinstance(event, Client.DisputeRuled):
            asked = rows.get(REQUESTS.name, client_id, event.dispute_id)
            parties: list[str | None] = [asked["requester_id"], asked["other_id"]] if asked else []
            plan.tell(
                "dispute_ruled",
                list(dict.fromkeys(p for p in parties if p)) or [None],
                "party",
                dispute_id=event.dispute_id,
                outcome=event.outcome,
                final=event.final,
            )

    def _negotiation(self, rows: Rows, event: Any, position: int) -> None:
        """A deal in deposit or subscription too long without a contract: the managers."""
        subject = rows.get(SUBJECTS.name, str(event.client_id))
        if subject is None:
            return
        _Plan(rows, subject, event, position).tell(
            "negotiation_escalated",
            self._members(rows, f"managers:{event.project_id}") or [None],
            "manager",
            consultant_id=event.consultant_id,
            deal_id=str(event.originator_id),
            stage=event.stage,
            since=event.since.isoformat(),
        )

    def _decided(
        self,
        plan: _Plan,
        rows: Rows,
        client_id: str,
        request: str,
        request_id: str,
        approved: bool,
        event: Any,
    ) -> None:
        """A loss request or pool claim decided: tell whoever asked."""
        plan.tell(
            "approval_decided",
            [self._requester(rows, client_id, request_id)],
            "requester",
            request=request,
            request_id=request_id,
            approved=approved,
            decided_by=_actor(event),
        )

    @staticmethod
    def _owner(subject: Row) -> list[str | None]:
        return [subject["consultant_id"]] if subject["consultant_id"] else []

    @staticmethod
    def _asked(
        rows: Rows, client_id: str, request_id: str, requester: str | None, other: str | None = None
    ) -> None:
        rows.put(
            REQUESTS.name,
            {
                "client_id": client_id,
                "request_id": request_id,
                "requester_id": requester,
                "other_id": other,
            },
        )

    @staticmethod
    def _requester(rows: Rows, client_id: str, request_id: str) -> str | None:
        asked = rows.get(REQUESTS.name, client_id, request_id)
        return asked["requester_id"] if asked else None


def _actor(event: Any) -> str | None:
    actor = getattr(event, "actor", None) or {}
    found = actor.get("id")
    return str(found) if found else None


class _Plan:
    """The notifications one event plans for one buyer."""

    def __init__(self, rows: Rows, subject: Row, event: Any, position: int) -> None:
        self.rows = rows
        self.subject = subject
        self.event = event
        self.position = position
        self.event_id = f"{event.originator_id}:{event.originator_version}"

    def _facts(self, **extra: Any) -> str:
        facts = {
            "phone_masked": self.subject["phone_masked"],
            "consultant_id": self.subject["consultant_id"],
            "grade": self.subject["grade"],
            **{k: v for k, v in extra.items() if v is not None},
        }
        return json.dumps(facts, ensure_ascii=False, sort_keys=True, default=str)

    def _add(
        self, kind: str, recipient: str | None, audience: str, due_at: datetime, facts: str
    ) -> str:
        nid = notification_id(self.event_id, kind, recipient)
        self.rows.put(
            NOTIFICATIONS.name,
            {
                "notification_id": nid,
                "kind": kind,
                "project_id": self.subject["project_id"],
                "client_id": self.subject["client_id"],
                "recipient_id": recipient,
                "audience": audience,
                "due_at": due_at,
                "facts": facts,
                "event_id": self.event_id,
                "position": self.position,
                "created_at": self.event.timestamp,
                "cancelled": False,
            },
        )
        return nid

    def tell(self, kind: str, recipients: list[str | None], audience: str, **facts: Any) -> None:
        """Something happened: tell these people now."""
        text = self._facts(**facts)
        for recipient in recipients:
            self._add(kind, recipient, audience, self.event.timestamp, text)

    def deadline(self, kind: str, due_at: datetime, recipients: list[str | None]) -> None:
        """A deadline: replaces what stood for it unless nothing changed."""
        slot = self.rows.get(SLOTS.name, self.subject["client_id"], kind)
        who = ",".join(r or "-" for r in recipients)
        if slot is not None and slot["due_at"] == due_at and slot["recipients"] == who:
            return
        self.withdraw(kind)
        if not recipients:
            return
        audience = "owner"
        text = self._facts(deadline=due_at.isoformat())
        ids = [self._add(kind, r, audience, due_at, text) for r in recipients]
        self.rows.put(
            SLOTS.name,
            {
                "client_id": self.subject["client_id"],
                "kind": kind,
                "due_at": due_at,
                "ids": ",".join(ids),
                "recipients": who,
            },
        )

    def withdraw(self, kind: str) -> None:
        slot = self.rows.get(SLOTS.name, self.subject["client_id"], kind)
        if slot is None:
            return
        for nid in _csv(slot["ids"]):
            row = self.rows.get(NOTIFICATIONS.name, nid)
            if row is not None:
                self.rows.put(NOTIFICATIONS.name, {**row, "cancelled": True})
        self.rows.delete(SLOTS.name, self.subject["client_id"], kind)
