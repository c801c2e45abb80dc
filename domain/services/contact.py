"""Contact: what the people serving a buyer may see, and the record of every time they look.

A phone lookup and a contact disclosure each count against the caller's allowance
(domain.allowance) in the same transaction as the record of it, so the cap is exact and
the audit trail complete. A disclosure also lands in the buyer's own stream, where the
history shows it to managers and auditors.

Neither is ever repeatable: a replayed lookup must count and be recorded like any other,
and a disclosure's answer (the full number) must never be stored in an idempotency record.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.allowance import DISCLOSURE, LOOKUP, Allowance, allowance_id, window_of
from domain.client import Client
from domain.errors import NotFound, RateLimited
from domain.ports import PersonalDataVault
from domain.services.clients import Clients
from domain.services.uow import Context, Done, UnitOfWork, fold
from domain.values import PhoneKeyer, check_identifier, normalize_phone
from domain.vocabulary import AllowanceKind


@dataclass(frozen=True)
class Contact:
    """The buyer's full name and number as shown to one person at one instant."""

    client_id: uuid.UUID
    name: str | None
    phone: str | None
    disclosed_at: datetime


@dataclass(frozen=True)
class FollowUpNote:
    follow_up_id: str
    at: datetime
    consultant_id: str
    method: str
    effective: bool
    grade: str | None
    next_contact_at: datetime | None
    summary: str | None  # None once the buyer's personal data is erased
    version: int


class BuyerContact:
    def __init__(
        self, uow: UnitOfWork, keyer: PhoneKeyer, vault: PersonalDataVault, clients: Clients
    ) -> None:
        self.uow = uow
        self.keyer = keyer
        self.vault = vault
        self.clients = clients

    def _allowance(self, kind: AllowanceKind, ctx: Context, now: datetime) -> Allowance:
        window, _ = window_of(kind, now)
        found = self.uow.find(Allowance, allowance_id(kind, ctx.actor.id, window))
        return found or Allowance.open(kind, ctx.actor.id, now, ctx.trace)

    def look_up(self, ctx: Context, project_id: str, phone: str, cap: int) -> uuid.UUID:
        """The buyer with this number, counted against the caller's hourly lookups and
        recorded found or not. An erased buyer is not found: their number is gone."""
        check_identifier(project_id, "project_id")
        candidate = self.keyer.client_id(project_id, normalize_phone(phone))
        once = Context(ctx.actor, ctx.correlation_id)

        def decide(
            now: datetime,
        ) -> tuple[list[Allowance], tuple[uuid.UUID | None, RateLimited | None]]:
            client = self.clients.find(candidate)
            found = client.id if client is not None and not client.erased else None
            allowance = self._allowance(LOOKUP, once, now)
            refused = allowance.record_lookup(project_id, found, cap, now, once.trace)
            return [allowance], (None if refused else found, refused)

        # Never replayed (no idempotency), so the outcome is there even when it is None.
        # A refusal is saved too (the audit shows it), then answered.
        found, refused = self.uow.run(once, decide).outcome or (None, None)
        if refused is not None:
            raise refused
        if found is None:
            raise NotFound("no client with this phone number at this project")
        return found

    def disclose_contact(self, ctx: Context, client_id: uuid.UUID, cap: int) -> Done[Contact]:
        """The buyer's full name and number for someone who serves them, on the record."""
        once = Context(ctx.actor, ctx.correlation_id)

        def decide(now: datetime) -> tuple[list[Client | Allowance], Contact]:
            # One read serves the state and the name (they were two replays).
            events = self.uow.events(client_id)
            client = fold(None, events)
            if not isinstance(client, Client) or client.erased:
                raise NotFound("client not found")
            allowance = self._allowance(DISCLOSURE, once, now)
            allowance.count_disclosure(client.id, cap, now, once.trace)
            client.disclose_contact(once.actor.id, once.actor.role, now, once.trace)
            phone = (self.vault.open(client.id, client.pii) or {}).get("phone")
            name = self.clients.buyer_name(client, events)
            return [client, allowance], Contact(client.id, name, phone, now)

        return self.uow.run(once, decide)

    def follow_up_notes(
        self, client_id: uuid.UUID, events: list[Any] | None = None
    ) -> list[FollowUpNote]:
        """Every follow-up in order, its note unsealed (None once erased). ``events``:
        every event of the buyer's stream as the caller read it (chain-checked), else
        read here, once (they were read twice: the buyer, then its events)."""
        if events is None:
            events = self.uow.events(client_id)
            if not isinstance(fold(None, events), Client):
                raise NotFound("client not found")
        notes = []
        for event in events:
            if not isinstance(event, Client.FollowUpLogged):
                continue
            opened = self.vault.open(client_id, event.pii)
            notes.append(
                FollowUpNote(
                    follow_up_id=event.follow_up_id,
                    at=event.timestamp,
                    consultant_id=event.consultant_id,
                    method=event.method,
                    effective=event.effective,
                    grade=event.grade,
                    next_contact_at=event.next_contact_at,
                    summary=opened.get("summary") if opened is not None else None,
                    version=event.originator_version,
                )
            )
        return notes
