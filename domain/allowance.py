"""Per-principal allowances: contact disclosures per day, phone lookups per hour.

Both exist to make unmasking expensive. A count kept anywhere but in a stream would let
N concurrent requests each see "one left"; like the pool-claim quota (domain.quota), a
stream per principal and window makes every counted request one event, saved in the
same transaction as what it allows, so N concurrent requests count to exactly N. The
events double as the audit trail (projections.lookup_audit).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate

from domain.errors import RateLimited
from domain.quota import CHINA
from domain.values import NAMESPACE
from domain.vocabulary import AllowanceKind

LOOKUP: AllowanceKind = "lookup"
DISCLOSURE: AllowanceKind = "disclosure"


def window_of(kind: AllowanceKind, moment: datetime) -> tuple[str, datetime]:
    """The window ``moment`` falls in and when the next one starts.

    Lookups count per clock hour, disclosures per China-time day (a sales office's day).
    """
    local = moment.astimezone(CHINA)
    if kind == LOOKUP:
        start = local.replace(minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%dT%H"), start + timedelta(hours=1)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m-%d"), start + timedelta(days=1)


def allowance_id(kind: AllowanceKind, principal_id: str, window: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"allowance:{kind}:{principal_id}:{window}")


class Allowance(Aggregate):
    class Event(Aggregate.Event):
        actor: dict[str, str]
        correlation_id: str

    class AllowanceOpened(Aggregate.Created):
        kind: str
        principal_id: str
        window: str

    class LookupRecorded(Aggregate.Event):
        """One phone lookup: who, for which project, and whether it found a buyer."""

        project_id: str
        found: bool
        client_id: uuid.UUID | None
        cap: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Allowance)
            aggregate.used += 1

    class LookupLimited(Aggregate.Event):
        """A phone lookup refused: the hour's allowance was used up. On the record
        like the others, so a principal hammering past the cap shows in the audit; it
        does not count, and records nothing of what the lookup would have found."""

        project_id: str
        cap: int

    class DisclosureCounted(Aggregate.Event):
        client_id: uuid.UUID
        cap: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Allowance)
            aggregate.used += 1

    def __init__(self, kind: AllowanceKind, principal_id: str, window: str) -> None:
        self.kind = kind
        self.principal_id = principal_id
        self.window = window
        self.used = 0

    @classmethod
    def open(
        cls, kind: AllowanceKind, principal_id: str, at: datetime, trace: dict[str, Any]
    ) -> Allowance:
        window, _ = window_of(kind, at)
        return cls._create(
            cls.AllowanceOpened,
            id=allowance_id(kind, principal_id, window),
            kind=kind,
            principal_id=principal_id,
            window=window,
            timestamp=at,
            **trace,
        )

    def _refusal(self, cap: int, at: datetime) -> RateLimited | None:
        if self.used < cap:
            return None
        _, renews = window_of(self.kind, at)
        wait = max(1, int((renews - at).total_seconds() + 0.999))
        what = "phone lookups this hour" if self.kind == LOOKUP else "disclosures today"
        return RateLimited(
            f"{self.principal_id} has used all {cap} {what}",
            code=f"{self.kind}_limit",
            retry_after=wait,
        )

    def _check(self, cap: int, at: datetime) -> None:
        refusal = self._refusal(cap, at)
        if refusal is not None:
            raise refusal

    def record_lookup(
        self,
        project_id: str,
        client_id: uuid.UUID | None,
        cap: int,
        at: datetime,
        trace: dict[str, Any],
    ) -> RateLimited | None:
        """Count and record the lookup; past the cap, record the refusal and return it
        (the caller saves the record, then answers the refusal)."""
        refusal = self._refusal(cap, at)
        if refusal is not None:
            self.trigger_event(
                self.LookupLimited, project_id=project_id, cap=cap, timestamp=at, **trace
            )
            return refusal
        self.trigger_event(
            self.LookupRecorded,
            project_id=project_id,
            found=client_id is not None,
            client_id=client_id,
            cap=cap,
            timestamp=at,
            **trace,
        )
        return None

    def count_disclosure(
        self, client_id: uuid.UUID, cap: int, at: datetime, trace: dict[str, Any]
    ) -> None:
        self._check(cap, at)
        self.trigger_event(
            self.DisclosureCounted, client_id=client_id, cap=cap, timestamp=at, **trace
        )
