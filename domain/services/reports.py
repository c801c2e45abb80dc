"""Reports (报备): a channel's claim on a buyer, and its expiry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from domain.client import Client
from domain.errors import InvalidInput, NotFound
from domain.locator import ReportLocator, locator_id
from domain.masked_pool import MaskedReportPool
from domain.ports import Clock, PersonalDataVault
from domain.reports import ReportState
from domain.services.clients import Clients
from domain.services.policies import Policies
from domain.services.uow import Context, Done, UnitOfWork
from domain.values import (
    SYSTEM,
    PhoneKeyer,
    check_identifier,
    mask_name,
    normalize_phone,
    parse_masked_phone,
)
from domain.visits import file_report_on


@dataclass(frozen=True)
class ReportView:
    """A report where it lives: on a buyer's stream (``client_id``) or in a masked pool."""

    report: ReportState
    project_id: str
    client_id: uuid.UUID | str | None
    at: datetime
    name_masked: str | None = None
    erased: bool = False  # the buyer it belongs to was erased: not even the mask shows
    # The buyer as read for this view (the access check judges staff by it, not reading
    # the stream again); None when not read.
    buyer: Client | None = field(default=None, compare=False, repr=False)


class Reports:
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        keyer: PhoneKeyer,
        vault: PersonalDataVault,
        policies: Policies,
        clients: Clients,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.keyer = keyer
        self.vault = vault
        self.policies = policies
        self.clients = clients

    def file_report(
        self,
        ctx: Context,
        *,
        project_id: str,
        partner_id: str,
        agent_id: str,
        client_name: str,
        phone: str,
        expected_visit_at: datetime | None = None,
        note: str | None = None,
    ) -> Done[ReportView]:
        check_identifier(project_id, "project_id")
        check_identifier(partner_id, "partner_id")
        check_identifier(agent_id, "agent_id")
        masked = parse_masked_phone(phone)
        number = None if masked else normalize_phone(phone)
        report_id = str(uuid.uuid4())

        def decide(now: datetime) -> tuple[list[object], ReportView]:
            policy = self.policies.policy_for(project_id)
            valid_until = now + policy.report_validity_delta
            if expected_visit_at is not None and not now <= expected_visit_at <= valid_until:
                raise InvalidInput(
                    "expected_visit_at",
                    f"must fall inside the report's validity, between now and "
                    f"{valid_until.isoformat()} (policy {policy.report_validity})",
                )
            stream: Client | MaskedReportPool
            pii_fields = {"name": client_name, **({"note": note} if note else {})}
            if masked is not None:
                pool_id = self.keyer.masked_pool_id(project_id, masked)
                stream = self.uow.find(MaskedReportPool, pool_id) or MaskedReportPool.open(
                    pool_id, project_id=project_id, phone_masked=masked, at=now, trace=ctx.trace
                )
                pii = self.vault.seal(uuid.UUID(report_id), pii_fields, new=True)
            else:
                assert number is not None
                stream = self.clients.client_for(ctx, project_id, number, now)
                pii = self.vault.seal(stream.id, pii_fields)
            report = file_report_on(
                stream,
                report_id=report_id,
                partner_id=partner_id,
                agent_id=agent_id,
                expected_visit_at=expected_visit_at,
                pii=pii,
                policy=policy,
                at=now,
                trace=ctx.trace,
            )
            locator = ReportLocator.place(
                report_id, stream.id, project_id, partner_id, now, ctx.trace
            )
            client_id = None if masked else stream.id
            return [stream, locator], ReportView(report, project_id, client_id, now)

        return self.uow.run(ctx, decide)

    def report(self, report_id: str) -> ReportView:
        try:
            uuid.UUID(report_id)
        except ValueError:
            raise NotFound("report not found") from None
        locator = self.uow.get(ReportLocator, locator_id(report_id), "report")
        holder = self.uow.find(Client, locator.stream_id) or self.uow.get(
            MaskedReportPool, locator.stream_id, "report"
        )
        report = holder.report(report_id)
        client_id = holder.id if isinstance(holder, Client) else report.client_id
        subject = holder.id if isinstance(holder, Client) else uuid.UUID(report_id)
        opened = self.vault.open(subject, report.pii) or {}
        name = mask_name(opened.get("name", "")) or None
        buyer = holder if isinstance(holder, Client) else None
        if buyer is None and report.client_id:
            buyer = self.uow.find(Client, uuid.UUID(str(report.client_id)))
        # A report from before a returned buyer's erasure shows no more than the erased one.
        mine = buyer.reports.get(report_id) if buyer is not None else None
        erased = buyer is not None and (
            buyer.text_erased(mine.filed_version) if mine else buyer.erased
        )
        return ReportView(report, locator.project_id, client_id, self.clock(), name, erased, buyer)

    def expire_report(self, stream_id: uuid.UUID, report_id: str) -> bool:
        """Issued by the deadline processor; a no-op unless validity really ran out."""
        ctx = Context(SYSTEM, f"deadline:report:{report_id}")

        def decide(now: datetime) -> tuple[list[object], bool]:
            holder = self.uow.find(Client, stream_id) or self.uow.find(MaskedReportPool, stream_id)
            if holder is None or report_id not in holder.reports:
                return [], False
            acted = holder.expire_report(report_id, now, ctx.trace)
            return ([holder] if acted else []), acted

        return bool(self.uow.run(ctx, decide).outcome)
