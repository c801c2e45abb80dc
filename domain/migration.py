"""Migration (客户迁移): buyers brought in from a sales office's own register.

A migrated row is a fact the office recorded before Yingke: who the buyer is, where they
came from, who has owned them since when, and the last follow-up. The sheet's dates are
kept as business time inside the events (``owned_since``, ``first_visited_at``,
``followed_up_at``); the events themselves are stamped with the time of the import, so
the stream stays in server-time order and replays never reorder (ADR 0040).

Protection is decided by the policy in force at the import: a fresh period from the
import, as for a transfer, because protection that ran out years ago in the office's
register would otherwise release every migrated buyer to the pool at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.policy import Policy
from domain.protection import Protection

MIGRATION_BASIS = "migration"
SOURCES = ("walk_in", "channel")


@dataclass(frozen=True)
class MigratedBuyer:
    """One row of a client register, read and normalized (phone canonical, ids checked)."""

    phone: str
    name: str
    source: str  # walk_in | channel
    partner_id: str | None
    agent: str | None
    consultant_id: str | None
    grade: str | None
    first_visited_at: datetime | None
    last_follow_up_at: datetime | None
    follow_up_notes: str | None
    budget_fen: int | None
    rooms: int | None
    area: str | None  # m², decimal string
    note: str | None

    def profile(self) -> dict[str, Any]:
        """The demand profile (客户画像) in the shape ProfileUpdated uses: budget in yuan,
        layouts as room counts, area in m²; one value in the sheet is a range of one."""
        profile: dict[str, Any] = {}
        if self.budget_fen is not None:
            profile["budget_min"] = profile["budget_max"] = self.budget_fen // 100
        if self.rooms is not None:
            profile["layouts"] = [self.rooms]
        if self.area is not None:
            profile["area_min"] = profile["area_max"] = float(self.area)
        return profile

    def personal(self) -> dict[str, str]:
        """What is sealed: the name, the agent's name and everything typed by people."""
        fields = {
            "name": self.name,
            "agent": self.agent,
            "note": self.note,
            "follow_up_notes": self.follow_up_notes,
        }
        return {k: v for k, v in fields.items() if v}

    def canonical(self) -> str:
        """The row's content, for the import's idempotency fingerprint (keyed-hashed)."""
        parts = [
            self.phone,
            self.name,
            self.source,
            self.partner_id,
            self.agent,
            self.consultant_id,
            self.grade,
            self.first_visited_at.isoformat() if self.first_visited_at else None,
            self.last_follow_up_at.isoformat() if self.last_follow_up_at else None,
            self.follow_up_notes,
            self.budget_fen,
            self.rooms,
            self.area,
            self.note,
        ]
        return "\x1f".join("" if p is None else str(p) for p in parts)


@dataclass(frozen=True)
class SheetRow:
    """A labelled row (``第7行``): the buyer read from it, or the problems that stopped it."""

    label: str
    buyer: MigratedBuyer | None
    problems: tuple[tuple[str, str, str], ...] = ()
    # Where a cell is reported, by field: {"phone": "第7行: 手机", "consultant": …}.
    fields: dict[str, str] = field(default_factory=dict)

    def where(self, name: str) -> str:
        return self.fields.get(name, f"{self.label}: {name}")


class ClientMigration(Protection):
    # Kept by the Client (its erasure): an erased buyer's return ends it.
    erased: bool
    erased_through: int

    class ClientMigrated(Aggregate.Event):
        """The buyer came from the office's register; dates are the sheet's own."""

        fingerprint: str
        row: str
        source: str
        partner_id: str | None
        first_visited_at: datetime | None
        grade: str | None
        profile: dict[str, Any]
        pii: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientMigration)
            aggregate.migration_fingerprint = self.fingerprint
            if getattr(aggregate, "erased", False):
                # Streams written before Client.BuyerReturned: the row itself ended it.
                aggregate.end_erasure(self.originator_version - 1)
            if self.grade is not None:
                aggregate.grade = self.grade
            if self.profile:
                aggregate.profile = dict(self.profile)

    class OwnershipMigrated(Aggregate.Event):
        """Who owned the buyer in the register and since when; protection from the import."""

        consultant_id: str
        partner_id: str | None
        report_id: str | None
        basis: str
        since: datetime
        protected_until: datetime
        policy_version: int
        previous_consultant_id: str | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientMigration)
            aggregate.take_ownership(self, self.consultant_id, self.partner_id, None, self.basis)

    class FollowUpMigrated(Aggregate.Event):
        """The register's last follow-up (最近跟进), at the sheet's date; its notes (跟进记录)
        are sealed in the ClientMigrated event, one key read for the whole row."""

        consultant_id: str | None
        followed_up_at: datetime
        with_notes: bool

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClientMigration)
            aggregate.follow_ups += 1
            if aggregate.last_follow_up_at is None or (
                self.followed_up_at > aggregate.last_follow_up_at
            ):
                aggregate.last_follow_up_at = self.followed_up_at

    def __init__(self) -> None:
        super().__init__()
        self.migration_fingerprint: str | None = None

    def end_erasure(self, through: int) -> None:
        """An erased buyer comes back (ADR 0005): new data is readable again, what came
        before stays erased. The boundary, not a flag: text of events at or before
        ``through`` reads [erased] (their tokens no longer open in any case), and the old
        demand profile and its source_detail are dropped from state."""
        self.erased = False
        self.erased_through = through
        self.profile = {}
        self.sealed_texts.pop("source_detail", None)

    def migrate(
        self,
        buyer: MigratedBuyer,
        *,
        fingerprint: str,
        row: str,
        pii: str,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        """Record a register row on a freshly registered buyer."""
        self.trigger_event(
            self.ClientMigrated,
            fingerprint=fingerprint,
            row=row,
            source=buyer.source,
            partner_id=buyer.partner_id,
            first_visited_at=buyer.first_visited_at,
            grade=buyer.grade,
            profile=buyer.profile(),
            pii=pii,
            timestamp=at,
            **trace,
        )
        if buyer.last_follow_up_at is not None or buyer.follow_up_notes:
            self.trigger_event(
                self.FollowUpMigrated,
                consultant_id=buyer.consultant_id,
                followed_up_at=buyer.last_follow_up_at or buyer.first_visited_at or at,
                with_notes=bool(buyer.follow_up_notes),
                timestamp=at,
                **trace,
            )
        if buyer.consultant_id is not None:
            self.trigger_event(
                self.OwnershipMigrated,
                consultant_id=buyer.consultant_id,
                partner_id=buyer.partner_id,
                report_id=None,
                basis=MIGRATION_BASIS,
                since=buyer.first_visited_at or at,
                protected_until=at + policy.protection_delta,
                policy_version=policy.version,
                previous_consultant_id=None,
                timestamp=at,
                **trace,
            )
            self.start_schedule(policy, at, trace)
