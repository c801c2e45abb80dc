"""Losses (战败) and the public pool (公客池): letting a buyer go and claiming one back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.client import Client
from domain.ports import PersonalDataVault
from domain.quota import ClaimQuota, month_of, quota_id
from domain.sealing import seal_text
from domain.services.clients import Clients
from domain.services.policies import Policies
from domain.services.principals import Principals
from domain.services.uow import Context, Done, UnitOfWork


@dataclass(frozen=True)
class LossOutcome:
    client: Client
    request_id: str
    reason: str | None = None


@dataclass(frozen=True)
class ClaimOutcome:
    client: Client
    claim_id: str
    status: str
    at: datetime
    claims_used: int | None = None  # with the monthly allowance, when a claim is counted
    claims_per_month: int | None = None


class Pool:
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

    # ----------------------------------------------------------------- losses

    def request_loss(
        self, ctx: Context, client_id: uuid.UUID, reason: str, note: str
    ) -> Done[LossOutcome]:
        request_id = str(uuid.uuid4())

        def decide(now: datetime) -> tuple[list[Client], LossOutcome]:
            client = self.clients.client(client_id)
            pii = self.vault.seal(client.id, {"note": note})
            client.request_loss(ctx.actor, request_id, reason, pii, now, ctx.trace)
            return [client], LossOutcome(client, request_id, reason)

        return self.uow.run(ctx, decide)

    def decide_loss(
        self, ctx: Context, client_id: uuid.UUID, request_id: str, approve: bool, comment: str
    ) -> Done[LossOutcome]:
        def decide(now: datetime) -> tuple[list[Client], LossOutcome]:
            client = self.clients.client(client_id)
            # The clear comment goes in only for the policy's check (a review comment may
            # be required); the event keeps it sealed under the buyer's key (ADR 0045).
            sealed = seal_text(self.vault, client.id, comment=comment)
            policy = self.policies.policy_for(client.project_id)
            if approve:
                client.approve_loss(request_id, comment, policy, now, ctx.trace, sealed)
            else:
                client.reject_loss(request_id, comment, policy, now, ctx.trace, sealed)
            return [client], LossOutcome(client, request_id)

        return self.uow.run(ctx, decide)

    # ------------------------------------------------------------------- pool

    def claim_from_pool(
        self, ctx: Context, client_id: uuid.UUID, consultant_id: str
    ) -> Done[ClaimOutcome]:
        claim_id = str(uuid.uuid4())

        def decide(now: datetime) -> tuple[list[Any], ClaimOutcome]:
            client = self.clients.client(client_id)
            self.principals.check_consultant(consultant_id, client.project_id)
            policy = self.policies.policy_for(client.project_id)
            qid = quota_id(client.project_id, consultant_id, month_of(now))
            quota = self.uow.find(ClaimQuota, qid) or ClaimQuota.open(
                client.project_id, consultant_id, now, ctx.trace
            )
            if policy.pool_claim_approval:
                client.request_claim(claim_id, consultant_id, now, ctx.trace)
                status = "pending"
            else:
                client.claim(claim_id, consultant_id, None, policy, now, ctx.trace)
                status = "claimed"
            quota.count(claim_id, client.id, policy.pool_claims_per_month, now, ctx.trace)
            per_month = policy.pool_claims_per_month
            return [client, quota], ClaimOutcome(
                client, claim_id, status, now, quota.used, per_month
            )

        return self.uow.run(ctx, decide)

    def decide_claim(
        self, ctx: Context, client_id: uuid.UUID, claim_id: str, approve: bool, reason: str
    ) -> Done[ClaimOutcome]:
        def decide(now: datetime) -> tuple[list[Any], ClaimOutcome]:
            client = self.clients.client(client_id)
            claim = client.pending_claim_by_id(claim_id)
            touched: list[Any] = [client]
            if approve:
                # The claimant may have left since asking: never hand a buyer to them.
                self.principals.check_consultant(claim.consultant_id, client.project_id)
                policy = self.policies.policy_for(client.project_id)
                client.claim(claim_id, claim.consultant_id, ctx.actor.id, policy, now, ctx.trace)
            else:
                sealed = seal_text(self.vault, client.id, reason=reason)
                client.reject_claim(claim_id, "", now, ctx.trace, sealed)
                qid = quota_id(client.project_id, claim.consultant_id, month_of(claim.requested_at))
                quota = self.uow.find(ClaimQuota, qid)
                if quota is not None:
                    quota.uncount(claim_id, now, ctx.trace)
                    touched.append(quota)
            return touched, ClaimOutcome(client, claim_id, client.claims[claim_id].status, now)

        return self.uow.run(ctx, decide)
