"""Importing a client register: check every row, then write the new buyers in batches.

All or nothing: every row is checked (cells, duplicates inside the file, buyers the
project already has) before anything is written, and one bad row refuses the file.
Idempotent by content: a row already imported with the same content is ``unchanged``,
so re-running a file changes nothing, and re-running after a crash finishes the job.
Writes go ``BATCH`` buyers per save (one transaction each): a save per row would cap
an import near a few hundred rows a second on PostgreSQL (ADR 0040).

Checking a row is a phone lookup, so the import is held to what lookups are held to:
every run, dry or real, is on the record (``lookup_audit``): who, when, which project,
how many rows, and each buyer it found already here (``duplicate_client``). Those clashes
count against a per-principal day's allowance (domain.allowance, kind ``import``) passed
in as ``cap``; past it the whole import is refused (429) and answers no row. A number
that belonged to an erased buyer is not known any more: it imports like a fresh one,
and the buyer comes back on their stream (ADR 0005) with the register's data.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from eventsourcing.persistence import IntegrityError

from domain.allowance import IMPORT, Allowance, allowance_id, window_of
from domain.client import Client
from domain.errors import InvalidInput, InvalidRows, RateLimited, TooMuchContention
from domain.migration import MigratedBuyer, SheetRow
from domain.policy import Policy
from domain.ports import Clock, PersonalDataVault
from domain.services.policies import Policies
from domain.services.principals import VISIT_ROLES, Principals
from domain.services.uow import Context, Done, UnitOfWork
from domain.values import PhoneKeyer, check_identifier, mask_phone

MAX_ROWS = 200_000
BATCH = 500
MIGRATED_VERSION = 2  # ClientRegistered, then ClientMigrated
CLASH = "duplicate_client"  # a row names a buyer the project has: a lookup that found

Problem = tuple[str, str, str]
Progress = Callable[[int], None]


@dataclass
class _Planned:
    row: SheetRow
    status: str  # new | unchanged | invalid
    client_id: uuid.UUID | None = None
    fingerprint: str | None = None
    message: str | None = None
    problem: Problem | None = None
    returning: bool = False  # an erased buyer's number: written back onto their stream

    def refuse(self, column: str, message: str, code: str) -> None:
        self.status, self.message = "invalid", message
        self.problem = (self.row.where(column), message, code)


@dataclass(frozen=True)
class _Known:
    """What the checks need of a buyer that exists already."""

    fingerprint: str | None
    since: datetime
    erased: bool = False

    @staticmethod
    def of(client: Client) -> _Known:
        return _Known(client.migration_fingerprint, client.created_on, client.erased)


@dataclass(frozen=True)
class RowOutcome:
    row: str  # 第7行
    status: str  # new | unchanged | invalid
    client_id: uuid.UUID | None
    message: str | None


@dataclass(frozen=True)
class ImportReport:
    project_id: str
    dry_run: bool
    rows: list[RowOutcome]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)


class ClientImport:
    """The import as one capability service, composed like the others (ADR 0040)."""

    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        keyer: PhoneKeyer,
        vault: PersonalDataVault,
        policies: Policies,
        principals: Principals,
        heads: Callable[[Sequence[uuid.UUID], int], Mapping[uuid.UUID, object]] | None = None,
        erased: Callable[[Sequence[uuid.UUID]], set[uuid.UUID]] | None = None,
    ) -> None:
        """``heads`` reads many streams as of a version in one go (an adapter over the
        store, chain-checked like any load); without it every buyer's stream is read on
        its own. ``erased`` tells which of many buyers were erased, in one go."""
        self.uow = uow
        self.clock = clock
        self.keyer = keyer
        self.vault = vault
        self.policies = policies
        self.principals = principals
        self.heads = heads
        self.erased = erased

    def run(
        self,
        ctx: Context,
        project_id: str,
        rows: list[SheetRow],
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        cap: int | None = None,
    ) -> Done[ImportReport]:
        """``cap``: how many buyers already here the caller may learn of by importing per
        day (None: no cap, for the admin's migration path; still on the record)."""
        check_identifier(project_id, "project_id")
        if not rows:
            raise InvalidInput("body", "the register has no rows", code="empty")
        if len(rows) > MAX_ROWS:
            raise InvalidInput("body", f"at most {MAX_ROWS} rows per import")
        plan = self._plan(project_id, rows)
        self._record(ctx, project_id, plan, dry_run, cap)
        problems = [p for item in plan for p in self._problems(item)]
        report = self._report(project_id, plan, dry_run)
        if dry_run:
            return Done(report, None)
        if problems:
            raise InvalidRows(problems)
        fresh = [item for item in plan if item.status == "new"]
        if progress is not None:
            progress(len(plan) - len(fresh))
        policy = self.policies.policy_for(project_id)
        position = None
        for start in range(0, len(fresh), BATCH):
            batch = fresh[start : start + BATCH]
            position = self._write(ctx, project_id, batch, policy) or position
            if progress is not None:
                progress(len(batch))
        return Done(report, position)

    # ------------------------------------------------------------------ record

    def _record(
        self, ctx: Context, project_id: str, plan: list[_Planned], dry_run: bool, cap: int | None
    ) -> None:
        """Put the check on the record and count what it found, before anything of it is
        answered: in one transaction with the count, so N concurrent imports by one
        principal count to exactly N times their clashes (as lookups do)."""
        clashes = [
            i.client_id
            for i in plan
            if i.client_id is not None and i.problem is not None and i.problem[2] == CLASH
        ]
        once = Context(ctx.actor, ctx.correlation_id)  # never replayed: every run counts

        def decide(now: datetime) -> tuple[list[Allowance], RateLimited | None]:
            window, _ = window_of(IMPORT, now)
            allowance = self.uow.find(Allowance, allowance_id(IMPORT, once.actor.id, window))
            allowance = allowance or Allowance.open(IMPORT, once.actor.id, now, once.trace)
            refused = allowance.record_import(
                project_id, len(plan), dry_run, clashes, cap, now, once.trace
            )
            return [allowance], refused

        refused = self.uow.run(once, decide).outcome
        if refused is not None:
            raise refused

    # ------------------------------------------------------------------ checks

    def _plan(self, project_id: str, rows: list[SheetRow]) -> list[_Planned]:
        keyer = self.keyer
        plan = [
            _Planned(row, "new", keyer.client_id(project_id, row.buyer.phone))
            if row.buyer is not None and not row.problems
            else _Planned(row, "invalid", message=self._summary(row))
            for row in rows
        ]
        ids = [item.client_id for item in plan if item.client_id is not None]
        known = self._migrated(ids) if self.heads is not None else None
        gone = self._erased(list(known)) if known is not None else set()
        seen: dict[uuid.UUID, str] = {}
        owners: dict[str, str | None] = {}
        for item in plan:
            buyer, client_id = item.row.buyer, item.client_id
            if buyer is None or client_id is None:
                continue
            item.fingerprint = keyer.digest(f"migration:{project_id}:{buyer.canonical()}")
            first = seen.setdefault(client_id, item.row.label)
            if first != item.row.label:
                item.refuse("phone", f"repeats the buyer of {first}", "duplicate_in_file")
                continue
            problem = self._owner_problem(project_id, buyer, owners)
            if problem:
                item.refuse("consultant", problem, "invalid_owner")
                continue
            if known is not None:
                existing = known.get(client_id)
                if client_id in gone:
                    full = self.uow.find(Client, client_id)
                    existing = None if full is None else _Known.of(full)
            else:
                found = self.uow.find(Client, client_id)
                existing = None if found is None else _Known.of(found)
            if existing is None:
                continue
            if existing.erased and existing.fingerprint is None:
                # Erased, and not brought back since by an import: the number is not
                # known any more. Anything else (a clash, even the mask) would tell the
                # importer the erased buyer was here.
                item.returning = True
                continue
            if existing.fingerprint == item.fingerprint:
                item.status = "unchanged"
            else:
                item.refuse(
                    "phone",
                    f"is already a buyer of this project ({mask_phone(buyer.phone)}, since "
                    f"{existing.since.date().isoformat()}): not merged; "
                    "remove the row or merge by hand",
                    CLASH,
                )
        return plan

    def _erased(self, ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which buyers among ``ids`` (all existing) were erased: one query per 1,000 ids
        when the store can tell, else a whole-stream read each."""
        if self.erased is not None:
            return self.erased(ids)
        return {i for i in ids if (c := self.uow.find(Client, i)) is not None and c.erased}

    def _migrated(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, _Known]:
        """The buyers among ``ids`` that exist, as of their second event: for a migrated
        buyer that is its ClientMigrated, so two events, not the whole stream, tell a
        re-run from a clash. Asked ``BATCH`` ids at a time, keeping two fields of each."""
        assert self.heads is not None
        known: dict[uuid.UUID, _Known] = {}
        for start in range(0, len(ids), BATCH):
            found = self.heads(ids[start : start + BATCH], MIGRATED_VERSION)
            known.update(
                (client_id, _Known.of(client))
                for client_id, client in found.items()
                if isinstance(client, Client)
            )
        return known

    @staticmethod
    def _summary(row: SheetRow) -> str:
        return "; ".join(f"{f.partition(': ')[2]}: {m}" for f, m, _ in row.problems)

    def _owner_problem(
        self, project_id: str, buyer: MigratedBuyer, cache: dict[str, str | None]
    ) -> str | None:
        consultant = buyer.consultant_id
        if consultant is None:
            return None
        if consultant not in cache:
            principal = self.principals.principal(consultant)
            if principal is None or principal.revoked:
                cache[consultant] = f"置业顾问 {consultant} is not an active principal"
            elif principal.role not in VISIT_ROLES:
                cache[consultant] = f"{consultant} is a {principal.role}, not a consultant"
            elif project_id not in principal.project_ids:
                cache[consultant] = f"{consultant} is not granted project {project_id}"
            else:
                cache[consultant] = None
        return cache[consultant]

    @staticmethod
    def _problems(item: _Planned) -> list[Problem]:
        return list(item.row.problems) + ([item.problem] if item.problem else [])

    @staticmethod
    def _report(project_id: str, plan: list[_Planned], dry_run: bool) -> ImportReport:
        return ImportReport(
            project_id,
            dry_run,
            [
                RowOutcome(
                    i.row.label,
                    i.status,
                    # A dry run names no buyer it did not find: a new row's id would let
                    # the caller ask GET /v1/clients/{id} whether an erased buyer had it.
                    None
                    if i.status == "invalid" or (dry_run and i.status == "new")
                    else i.client_id,
                    i.message,
                )
                for i in plan
            ],
        )

    # ------------------------------------------------------------------ writes

    def _write(
        self, ctx: Context, project_id: str, batch: list[_Planned], policy: Policy
    ) -> int | None:
        for attempt in range(self.uow.max_attempts):
            now = self.clock()
            todo = [i for i in batch if not attempt or self._still_new(i)]
            sealed = self.vault.seal_new([pair for i in todo for pair in self._personal(i)])
            clients = [
                self._buyer(ctx, project_id, item, policy, now, sealed[2 * n], sealed[2 * n + 1])
                if not item.returning
                else self._returning(ctx, item, policy, now, sealed[2 * n], sealed[2 * n + 1])
                for n, item in enumerate(todo)
            ]
            try:
                recordings = self.uow.store.save(*clients)
            except IntegrityError:
                # Someone registered one of these buyers meanwhile: check the batch again.
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
                continue
            return max((r.notification.id for r in recordings), default=None)
        raise TooMuchContention("too many concurrent writers for these buyers; try again")

    def _still_new(self, item: _Planned) -> bool:
        """On a retry: whether the buyer is still missing (an identical import may have
        written it meanwhile; anyone else writing it refuses the file)."""
        assert item.client_id is not None
        if item.returning:
            existing = self.uow.find(Client, item.client_id)
            if existing is not None and existing.erased:
                if existing.migration_fingerprint is None:
                    return True
                if existing.migration_fingerprint == item.fingerprint:
                    return False
        else:
            existing = self.uow.find(Client, item.client_id, version=MIGRATED_VERSION)
        if existing is None:
            return True
        if existing.migration_fingerprint == item.fingerprint:
            return False
        raise InvalidRows(
            [
                (
                    item.row.where("phone"),
                    "became a buyer of this project during the import: not merged",
                    "duplicate_client",
                )
            ]
        )

    def _returning(
        self, ctx: Context, item: _Planned, policy: Policy, now: datetime, phone: str, pii: str
    ) -> Client:
        """An erased buyer's number on the register: the buyer comes back on their own
        stream (its id is the number's), the number and the register's row under a fresh
        key (``phone``: the number sealed, so the contact opens again)."""
        assert item.client_id is not None and item.fingerprint is not None
        assert item.row.buyer is not None
        client = self.uow.find(Client, item.client_id)
        assert client is not None
        client.come_back(phone, now, ctx.trace)
        client.migrate(
            item.row.buyer,
            fingerprint=item.fingerprint,
            row=item.row.label,
            pii=pii,
            policy=policy,
            at=now,
            trace=ctx.trace,
        )
        return client

    @staticmethod
    def _personal(item: _Planned) -> list[tuple[uuid.UUID, dict[str, str]]]:
        assert item.client_id is not None and item.row.buyer is not None
        buyer = item.row.buyer
        return [(item.client_id, {"phone": buyer.phone}), (item.client_id, buyer.personal())]

    def _buyer(
        self,
        ctx: Context,
        project_id: str,
        item: _Planned,
        policy: Policy,
        now: datetime,
        phone_pii: str,
        pii: str,
    ) -> Client:
        assert item.client_id is not None and item.fingerprint is not None
        buyer = item.row.buyer
        assert buyer is not None
        client = Client.register(
            item.client_id,
            project_id=project_id,
            phone_masked=mask_phone(buyer.phone),
            phone_hash=self.keyer.digest(buyer.phone),
            pii=phone_pii,
            at=now,
            trace=ctx.trace,
        )
        client.migrate(
            buyer,
            fingerprint=item.fingerprint,
            row=item.row.label,
            pii=pii,
            policy=policy,
            at=now,
            trace=ctx.trace,
        )
        return client
