"""Follow-up and protection: 跟进, grades, profile, transfers, and the deadlines that end
a protection, release an inactive buyer, flag a dormant one (待激活) or escalate an
overdue follow-up to the supervisor."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.client import Client
from domain.ports import PersonalDataVault
from domain.sealing import seal_text
from domain.services.clients import ClientAt, Clients
from domain.services.policies import Policies
from domain.services.principals import Principals
from domain.services.uow import Context, Done, UnitOfWork
from domain.values import SYSTEM


@dataclass(frozen=True)
class FollowUpLogged:
    client: Client
    follow_up_id: str
    at: datetime


class FollowUps:
    def __init__(
        self,
        uow: UnitOfWork,
        vault: PersonalDataVault,
        policies: Policies,
        principals: Principals,
        clients: Clients,
    ) -> None:
        self.uow = uow
        self.vault = vault
        self.policies = policies
        self.principals = principals
        self.clients = clients

    def log_follow_up(
        self,
        ctx: Context,
        client_id: uuid.UUID,
        *,
        method: str,
        summary: str,
        effective: bool,
        next_contact_at: datetime | None = None,
        grade: str | None = None,
    ) -> Done[FollowUpLogged]:
        follow_up_id = str(uuid.uuid4())

        def decide(now: datetime) -> tuple[list[Client], FollowUpLogged]:
            client = self.clients.client(client_id)
            client.log_follow_up(
                actor=ctx.actor,
                follow_up_id=follow_up_id,
                method=method,
                effective=effective,
                next_contact_at=next_contact_at,
                grade=grade,
                pii=self.vault.seal(client.id, {"summary": summary}),
                policy=self.policies.policy_for(client.project_id),
                at=now,
                trace=ctx.trace,
            )
            return [client], FollowUpLogged(client, follow_up_id, now)

        return self.uow.run(ctx, decide)

    def change_grade(
        self, ctx: Context, client_id: uuid.UUID, grade: str, reason: str
    ) -> Done[ClientAt]:
        def decide(now: datetime) -> tuple[list[Client], ClientAt]:
            client = self.clients.client(client_id)
            policy = self.policies.policy_for(client.project_id)
            sealed = seal_text(self.vault, client.id, reason=reason)
            client.change_grade(ctx.actor, grade, "", policy, now, ctx.trace, sealed)
            return [client], ClientAt(client, now)

        return self.uow.run(ctx, decide)

    def update_profile(
        self, ctx: Context, client_id: uuid.UUID, profile: dict[str, Any]
    ) -> Done[ClientAt]:
        def decide(now: datetime) -> tuple[list[Client], ClientAt]:
            client = self.clients.client(client_id)
            structured = {k: v for k, v in profile.items() if k != "source_detail"}
            sealed = seal_text(self.vault, client.id, source_detail=profile.get("source_detail"))
            client.update_profile(ctx.actor, structured, now, ctx.trace, sealed)
            return [client], ClientAt(client, now)

        return self.uow.run(ctx, decide)

    def transfer(
        self, ctx: Context, client_id: uuid.UUID, to_consultant: str, reason: str
    ) -> Done[ClientAt]:
        def decide(now: datetime) -> tuple[list[Client], ClientAt]:
            client = self.clients.client(client_id)
            self.principals.check_consultant(to_consultant, client.project_id)
            client.transfer(
                to=to_consultant,
                basis="transfer",
                reason="",
                sealed=seal_text(self.vault, client.id, reason=reason),
                policy=self.policies.policy_for(client.project_id),
                at=now,
                trace=ctx.trace,
            )
            return [client], ClientAt(client, now)

        return self.uow.run(ctx, decide)

    # -------------------------------------------------------------- deadlines

    def expire_protection(self, client_id: uuid.UUID, epoch: int | None) -> bool:
        ctx = Context(SYSTEM, f"deadline:protection:{client_id}:{epoch}")

        def decide(now: datetime) -> tuple[list[Client], bool]:
            client = self.clients.find(client_id)
            if client is None:
                return [], False
            policy = self.policies.policy_for(client.project_id)
            acted = client.expire_protection(epoch, policy, now, ctx.trace)
            return ([client] if acted else []), acted

        return bool(self.uow.run(ctx, decide).outcome)

    def release_inactive(self, client_id: uuid.UUID, epoch: int | None) -> bool:
        ctx = Context(SYSTEM, f"deadline:inactive:{client_id}:{epoch}")

        def decide(now: datetime) -> tuple[list[Client], bool]:
            client = self.clients.find(client_id)
            if client is None:
                return [], False
            policy = self.policies.policy_for(client.project_id)
            acted = client.release_inactive(epoch, policy, now, ctx.trace)
            return ([client] if acted else []), acted

        return bool(self.uow.run(ctx, decide).outcome)

    def go_dormant(self, client_id: uuid.UUID, epoch: int | None) -> bool:
        """待激活: ``dormant_after`` without contact; a wake-up task for the owner."""
        ctx = Context(SYSTEM, f"deadline:dormant:{client_id}:{epoch}")

        def decide(now: datetime) -> tuple[list[Client], bool]:
            client = self.clients.find(client_id)
            if client is None:
                return [], False
            policy = self.policies.policy_for(client.project_id)
            acted = client.go_dormant(epoch, policy, now, ctx.trace)
            return ([client] if acted else []), acted

        return bool(self.uow.run(ctx, decide).outcome)

    def escalate_follow_up(self, client_id: uuid.UUID, epoch: int | None) -> bool:
        """An overdue follow-up past its grade's ``escalate_after``: the supervisor's task."""
        ctx = Context(SYSTEM, f"deadline:escalation:{client_id}:{epoch}")

        def decide(now: datetime) -> tuple[list[Client], bool]:
            client = self.clients.find(client_id)
            if client is None:
                return [], False
            policy = self.policies.policy_for(client.project_id)
            acted = client.escalate_follow_up(epoch, policy, now, ctx.trace)
            return ([client] if acted else []), acted

        return bool(self.uow.run(ctx, decide).outcome)
