"""Visits (到访): the buyer walks in; the attribution is decided at that instant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from domain.attribution import VisitDecision
from domain.client import Client
from domain.masked_pool import MaskedReportPool
from domain.ports import PersonalDataVault
from domain.reports import ReportState
from domain.services.clients import Clients
from domain.services.policies import Policies
from domain.services.principals import Principals
from domain.services.uow import Context, Done, UnitOfWork
from domain.values import PhoneKeyer, check_identifier, mask_phone, normalize_phone
from domain.visits import decide_and_record_visit


@dataclass(frozen=True)
class VisitOutcome:
    client: Client
    visit_id: str
    decision: VisitDecision
    at: datetime


class Visits:
    def __init__(
        self,
        uow: UnitOfWork,
        keyer: PhoneKeyer,
        vault: PersonalDataVault,
        policies: Policies,
        principals: Principals,
        clients: Clients,
    ) -> None:
        self.uow = uow
        self.keyer = keyer
        self.vault = vault
        self.policies = policies
        self.principals = principals
        self.clients = clients

    def register_visit(
        self,
        ctx: Context,
        *,
        project_id: str,
        phone: str,
        client_name: str,
        consultant_id: str,
        partner_id: str | None = None,
        agent_id: str | None = None,
    ) -> Done[VisitOutcome]:
        check_identifier(project_id, "project_id")
        number = normalize_phone(phone)
        if partner_id is not None:
            check_identifier(partner_id, "partner_id")
        if agent_id is not None:
            check_identifier(agent_id, "agent_id")
        self.principals.check_consultant(consultant_id, project_id)
        visit_id = str(uuid.uuid4())

        def decide(now: datetime) -> tuple[list[object], VisitOutcome]:
            policy = self.policies.policy_for(project_id)
            client = self.clients.client_for(ctx, project_id, number, now)
            pool = self.uow.find(
                MaskedReportPool, self.keyer.masked_pool_id(project_id, mask_phone(number))
            )

            def reseal(report: ReportState) -> str:
                """The masked report's personal data, re-sealed under the buyer's key."""
                opened = self.vault.open(uuid.UUID(report.report_id), report.pii) or {}
                return self.vault.seal(client.id, opened)

            decision, touched = decide_and_record_visit(
                client,
                pool,
                policy,
                visit_id=visit_id,
                consultant_id=consultant_id,
                partner_id=partner_id,
                agent_id=agent_id,
                pii=self.vault.seal(client.id, {"name": client_name}),
                reseal=reseal,
                at=now,
                trace=ctx.trace,
            )
            return list(touched), VisitOutcome(client, visit_id, decision, now)

        return self.uow.run(ctx, decide)
