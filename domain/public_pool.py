"""How a buyer leaves their consultant and comes back: losses (战败) that a supervisor
approves into the public pool (公海池), and claims (捞客) that take a buyer out of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.custody import Custody
from domain.errors import Conflict, InvalidInput, NotFound
from domain.policy import Policy
from domain.values import Actor
from domain.vocabulary import LOSS_REASONS


@dataclass
class LossRequest:
    request_id: str
    reason: str
    requested_by: str
    requested_at: datetime
    status: str = "pending"  # pending | approved | rejected


@dataclass
class PoolClaim:
    claim_id: str
    consultant_id: str
    requested_at: datetime
    status: str = "pending"  # pending | approved | rejected


class PublicPool(Custody):
    # ------------------------------------------------------------------ events

    class LossRequested(Aggregate.Event):
        request_id: str
        reason: str
        pii: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PublicPool)
            aggregate.loss_requests[self.request_id] = LossRequest(
                self.request_id,
                self.reason,
                getattr(self, "actor", {}).get("id", ""),
                self.timestamp,
            )

    class LossApproved(Aggregate.Event):
        request_id: str
        loss_reason: str
        comment: str
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PublicPool)
            aggregate.loss_requests[self.request_id].status = "approved"
            aggregate.lost_reason = self.loss_reason

    class LossRejected(Aggregate.Event):
        request_id: str
        comment: str
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PublicPool)
            aggregate.loss_requests[self.request_id].status = "rejected"

    class ClaimRequested(Aggregate.Event):
        claim_id: str
        consultant_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PublicPool)
            aggregate.claims[self.claim_id] = PoolClaim(
                self.claim_id, self.consultant_id, self.timestamp
            )

    class ClaimRejected(Aggregate.Event):
        claim_id: str
        reason: str
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PublicPool)
            aggregate.claims[self.claim_id].status = "rejected"

    class ClaimedFromPool(Aggregate.Event):
        claim_id: str
        consultant_id: str
        approved_by: str | None
        since: datetime
        protected_until: datetime
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PublicPool)
            claim = aggregate.claims.setdefault(
                self.claim_id, PoolClaim(self.claim_id, self.consultant_id, self.timestamp)
            )
            claim.status = "approved"
            aggregate.take_ownership(self, self.consultant_id, None, None, "pool_claim")

    # ------------------------------------------------------------------- state

    def __init__(self) -> None:
        super().__init__()
        self.lost_reason: str | None = None
        self.loss_requests: dict[str, LossRequest] = {}
        self.claims: dict[str, PoolClaim] = {}

    @property
    def pending_loss(self) -> LossRequest | None:
        return next((r for r in self.loss_requests.values() if r.status == "pending"), None)

    @property
    def pending_claim(self) -> PoolClaim | None:
        return next((c for c in self.claims.values() if c.status == "pending"), None)

    # ----------------------------------------------------------------- losses

    def request_loss(
        self,
        actor: Actor,
        request_id: str,
        reason: str,
        pii: str,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self._require_owner_or_supervisor(actor)
        self._refuse_in_deal()
        if reason not in LOSS_REASONS:
            raise InvalidInput("reason", f"must be one of {', '.join(LOSS_REASONS)}")
        if self.pending_loss is not None:
            raise Conflict("a loss request is already waiting for review", code="loss_pending")
        self.trigger_event(
            self.LossRequested,
            request_id=request_id,
            reason=reason,
            pii=pii,
            timestamp=at,
            **trace,
        )

    def _pending_loss(self, request_id: str) -> LossRequest:
        request = self.loss_requests.get(request_id)
        if request is None:
            raise NotFound("loss request not found")
        if request.status != "pending":
            raise Conflict(f"the loss request is already {request.status}", code="decided")
        return request

    @staticmethod
    def _check_review(comment: str, policy: Policy) -> None:
        if policy.loss_review_comment_required and not comment.strip():
            # The seeds make the supervisor's review (审核意见) part of the record.
            raise InvalidInput(
                "comment",
                "is required: the project's policy wants a review comment (审核意见) on "
                "every loss decision",
                code="comment_required",
            )

    def approve_loss(
        self,
        request_id: str,
        comment: str,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
        sealed: str = "",
    ) -> None:
        request = self._pending_loss(request_id)
        self._check_review(comment, policy)
        self.trigger_event(
            self.LossApproved,
            request_id=request_id,
            loss_reason=request.reason,
            comment="" if sealed else comment,
            sealed=sealed,
            timestamp=at,
            **trace,
        )
        if self.owner is not None:
            self._release("lost", policy, at, trace)

    def reject_loss(
        self,
        request_id: str,
        comment: str,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
        sealed: str = "",
    ) -> None:
        self._pending_loss(request_id)
        self._check_review(comment, policy)
        self.trigger_event(
            self.LossRejected,
            request_id=request_id,
            comment="" if sealed else comment,
            sealed=sealed,
            timestamp=at,
            **trace,
        )

    # ------------------------------------------------------------------ pool

    def _require_pool(self) -> None:
        if not self.in_pool:
            raise Conflict("the client is not in the public pool", code="not_in_pool")
        self._refuse_in_deal()

    def request_claim(
        self, claim_id: str, consultant_id: str, at: datetime, trace: dict[str, Any]
    ) -> None:
        self._require_pool()
        if self.pending_claim is not None:
            raise Conflict(
                "another claim on this client is waiting for approval", code="claim_pending"
            )
        self.trigger_event(
            self.ClaimRequested,
            claim_id=claim_id,
            consultant_id=consultant_id,
            timestamp=at,
            **trace,
        )

    def claim(
        self,
        claim_id: str,
        consultant_id: str,
        approved_by: str | None,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self._require_pool()
        pending = self.pending_claim
        if pending is not None and pending.claim_id != claim_id:
            raise Conflict(
                "another claim on this client is waiting for approval", code="claim_pending"
            )
        self.trigger_event(
            self.ClaimedFromPool,
            claim_id=claim_id,
            consultant_id=consultant_id,
            approved_by=approved_by,
            since=at,
            protected_until=at + policy.protection_delta,
            policy_version=policy.version,
            timestamp=at,
            **trace,
        )
        self.start_schedule(policy, at, trace)

    def pending_claim_by_id(self, claim_id: str) -> PoolClaim:
        claim = self.claims.get(claim_id)
        if claim is None:
            raise NotFound("claim not found")
        if claim.status != "pending":
            raise Conflict(f"the claim is already {claim.status}", code="decided")
        return claim

    def reject_claim(
        self, claim_id: str, reason: str, at: datetime, trace: dict[str, Any], sealed: str = ""
    ) -> PoolClaim:
        claim = self.pending_claim_by_id(claim_id)
        self.trigger_event(
            self.ClaimRejected,
            claim_id=claim_id,
            reason=reason,
            sealed=sealed,
            timestamp=at,
            **trace,
        )
        return claim
