"""Per-principal allowances: contact disclosures per day, phone lookups per hour, and
the buyers a client-register import may find already here per day.

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
IMPORT: AllowanceKind = "import"


def window_of(kind: AllowanceKind, moment: datetime) -> tuple[str, datetime]:
    """The window ``moment`` falls in and when the next one starts.

    Lookups count per clock hour, disclosures and import clashes per China-time day (a
    sales office's day).
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

    class ImportChecked(Aggregate.Event):
        """A client-register import (or its dry run) checked ``rows`` phones against the
        project's buyers. Each buyer it found follows as an ImportClash; this one records
        the rest, so a principal sweeping candidate numbers shows even when nothing hit."""

        project_id: str
        rows: int
        dry_run: bool

    class ImportClash(Aggregate.Event):
        """A row of an import named a buyer the project already has: the import told the
        caller so (``duplicate_client``), which is a lookup that found, and counts."""

        project_id: str
        client_id: uuid.UUID
        cap: int | None  # None: an uncapped principal (admin, the CLI's migration path)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Allowance)
            aggregate.used += 1

    class ImportLimited(Aggregate.Event):
        """An import refused (429) because the buyers it found would pass the day's cap.
        Nothing of what it found is answered, and the day's allowance is spent: a refusal
        that cost nothing would let a caller bisect a file for free."""

        project_id: str
        rows: int
        cap: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Allowance)
            aggregate.used = max(aggregate.used, self.cap)

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
        what = {
            LOOKUP: "phone lookups this hour",
            DISCLOSURE: "disclosures today",
            IMPORT: "buyers an import may find already here today",
        }[self.kind]
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

    def record_import(
        self,
        project_id: str,
        rows: int,
        dry_run: bool,
        clashes: list[uuid.UUID],
        cap: int | None,
        at: datetime,
        trace: dict[str, Any],
    ) -> RateLimited | None:
        """Record an import's check and count the buyers it found; if they would pass
        ``cap`` (None: uncapped), or the cap is reached already, record the refusal
        instead and return it (the caller saves the record, then answers 429 without any
        row's outcome)."""
        # Once the day's allowance is used up, every import is refused, even one that
        # would find nothing: "none of these is a buyer" would otherwise come for free.
        if cap is not None and (self.used >= cap or self.used + len(clashes) > cap):
            refusal = RateLimited(
                f"{self.principal_id} may learn of at most {cap} buyers already here by "
                f"importing per day; this import would pass it (rows: {rows})",
                code="import_limit",
                retry_after=1,
            )
            limited = self._refusal(0, at)  # for the wait until the next day
            assert limited is not None
            refusal.retry_after = limited.retry_after
            self.trigger_event(
                self.ImportLimited, project_id=project_id, rows=rows, cap=cap, timestamp=at, **trace
            )
            return refusal
        self.trigger_event(
            self.ImportChecked,
            project_id=project_id,
            rows=rows,
            dry_run=dry_run,
            timestamp=at,
            **trace,
        )
        for client_id in clashes:
            self.trigger_event(
                self.ImportClash,
                project_id=project_id,
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
