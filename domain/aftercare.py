"""Aftercare: follow-ups, grades, losses, the pool, transfers, departures, disputes and
the deadline commands that time itself issues."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from domain.client import Client
from domain.custody import Ownership
from domain.departure import Departure, departure_id
from domain.disputes import DisputeState
from domain.errors import Conflict, InvalidInput, NotFound
from domain.intake import VISIT_ROLES, Intake
from domain.locator import DisputeLocator, dispute_locator_id
from domain.masked_pool import MaskedReportPool
from domain.principal import Principal, principal_uuid
from domain.quota import ClaimQuota, month_of, quota_id
from domain.service import CommandResult, Context, Decision, jsonable_dict
from domain.values import SYSTEM


class Aftercare(Intake):
    # ------------------------------------------------------------- follow-ups

    def _ownership_body(self, client: Client, now: datetime) -> dict[str, Any]:
        return {
            "client_id": client.id,
            "status": client.status,
            "owner": client.ownership_at(now),
            "grade": client.grade,
            "next_follow_up_due": client.next_follow_up_due,
            "inactive_after": client.inactive_after,
        }

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
    ) -> CommandResult:
        follow_up_id = str(uuid.uuid4())

        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            policy = self.policy_for(client.project_id)
            client.log_follow_up(
                actor=ctx.actor,
                follow_up_id=follow_up_id,
                method=method,
                effective=effective,
                next_contact_at=next_contact_at,
                grade=grade,
                pii=self.vault.seal(client.id, {"summary": summary}),
                policy=policy,
                at=now,
                trace=ctx.trace,
            )
            return [client], {"follow_up_id": follow_up_id, **self._ownership_body(client, now)}

        return self._execute(ctx, decide)

    def change_grade(
        self, ctx: Context, client_id: uuid.UUID, grade: str, reason: str
    ) -> CommandResult:
        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            policy = self.policy_for(client.project_id)
            client.change_grade(ctx.actor, grade, reason, policy, now, ctx.trace)
            return [client], self._ownership_body(client, now)

        return self._execute(ctx, decide, status_code=200)

    def update_profile(
        self, ctx: Context, client_id: uuid.UUID, profile: dict[str, Any]
    ) -> CommandResult:
        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            client.update_profile(ctx.actor, profile, now, ctx.trace)
            return [client], {"client_id": client.id, "profile": client.profile}

        return self._execute(ctx, decide, status_code=200)

    # -------------------------------------------------------------- transfers

    def transfer(
        self, ctx: Context, client_id: uuid.UUID, to_consultant: str, reason: str
    ) -> CommandResult:
        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            self._check_consultant(to_consultant, client.project_id)
            policy = self.policy_for(client.project_id)
            client.transfer(
                to=to_consultant,
                basis="transfer",
                reason=reason,
                policy=policy,
                at=now,
                trace=ctx.trace,
            )
            return [client], self._ownership_body(client, now)

        return self._execute(ctx, decide, status_code=200)

    # ----------------------------------------------------------------- losses

    def request_loss(
        self, ctx: Context, client_id: uuid.UUID, reason: str, note: str
    ) -> CommandResult:
        request_id = str(uuid.uuid4())

        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            pii = self.vault.seal(client.id, {"note": note})
            client.request_loss(ctx.actor, request_id, reason, pii, now, ctx.trace)
            return [client], {
                "client_id": client.id,
                "request_id": request_id,
                "status": "pending",
                "reason": reason,
            }

        return self._execute(ctx, decide)

    def decide_loss(
        self, ctx: Context, client_id: uuid.UUID, request_id: str, approve: bool, comment: str
    ) -> CommandResult:
        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            if approve:
                policy = self.policy_for(client.project_id)
                client.approve_loss(request_id, comment, policy, now, ctx.trace)
            else:
                client.reject_loss(request_id, comment, now, ctx.trace)
            return [client], {
                "client_id": client.id,
                "request_id": request_id,
                "status": client.loss_requests[request_id].status,
                "client_status": client.status,
            }

        return self._execute(ctx, decide, status_code=200)

    # ------------------------------------------------------------------- pool

    def claim_from_pool(
        self, ctx: Context, client_id: uuid.UUID, consultant_id: str
    ) -> CommandResult:
        claim_id = str(uuid.uuid4())

        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            self._check_consultant(consultant_id, client.project_id)
            policy = self.policy_for(client.project_id)
            quota = self._quota(client.project_id, consultant_id, now, ctx)
            if policy.pool_claim_approval:
                client.request_claim(claim_id, consultant_id, now, ctx.trace)
                status = "pending"
            else:
                client.claim(claim_id, consultant_id, None, policy, now, ctx.trace)
                status = "claimed"
            quota.count(claim_id, client.id, policy.pool_claims_per_month, now, ctx.trace)
            body = {
                **self._ownership_body(client, now),
                "claim_id": claim_id,
                "status": status,
                "claims_used": quota.used,
                "claims_per_month": policy.pool_claims_per_month,
            }
            return [client, quota], body

        return self._execute(ctx, decide)

    def _quota(
        self, project_id: str, consultant_id: str, now: datetime, ctx: Context
    ) -> ClaimQuota:
        qid = quota_id(project_id, consultant_id, month_of(now))
        return self._find(ClaimQuota, qid) or ClaimQuota.open(
            project_id, consultant_id, now, ctx.trace
        )

    def decide_claim(
        self, ctx: Context, client_id: uuid.UUID, claim_id: str, approve: bool, reason: str
    ) -> CommandResult:
        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            claim = client.pending_claim_by_id(claim_id)
            touched: list[Any] = [client]
            if approve:
                # The claimant may have left since asking: never hand a buyer to them.
                self._check_consultant(claim.consultant_id, client.project_id)
                policy = self.policy_for(client.project_id)
                client.claim(claim_id, claim.consultant_id, ctx.actor.id, policy, now, ctx.trace)
            else:
                client.reject_claim(claim_id, reason, now, ctx.trace)
                qid = quota_id(client.project_id, claim.consultant_id, month_of(claim.requested_at))
                quota = self._find(ClaimQuota, qid)
                if quota is not None:
                    quota.uncount(claim_id, now, ctx.trace)
                    touched.append(quota)
            body = {
                **self._ownership_body(client, now),
                "claim_id": claim_id,
                "status": client.claims[claim_id].status,
            }
            return touched, body

        return self._execute(ctx, decide, status_code=200)

    # -------------------------------------------------------------- departure

    def start_departure(
        self, ctx: Context, consultant_id: str, successor_id: str | None
    ) -> CommandResult:
        """Revoke the leaver's key and open the move, atomically; a repeat resumes."""

        def decide(now: datetime) -> Decision:
            leaver = self._find(Principal, principal_uuid(consultant_id))
            if leaver is None or leaver.role not in VISIT_ROLES:
                raise NotFound(f"no consultant {consultant_id}")
            existing = self._find(Departure, departure_id(consultant_id))
            if existing is not None:
                if existing.successor_id != successor_id:
                    raise Conflict(
                        "this departure was started with another successor",
                        code="departure_differs",
                    )
                return [], self._departure_body(existing)
            if successor_id is not None:
                if successor_id == consultant_id:
                    raise InvalidInput("successor_id", "must be someone other than the leaver")
                for project_id in leaver.project_ids:
                    self._check_consultant(successor_id, project_id, field="successor_id")
            departure = Departure.start(
                consultant_id, successor_id, leaver.project_ids, now, ctx.trace
            )
            leaver.revoke("departed", now, ctx.trace)
            return [departure, leaver], self._departure_body(departure)

        return self._execute(ctx, decide)

    @staticmethod
    def _departure_body(departure: Departure) -> dict[str, Any]:
        return {
            "consultant_id": departure.consultant_id,
            "successor_id": departure.successor_id,
            "to_pool": departure.successor_id is None,
            "status": departure.status,
            "moved": sum(1 for o in departure.moved.values() if o != "skipped"),
            "started_at": departure.created_on,
        }

    def departure(self, consultant_id: str) -> Departure:
        return self._get(Departure, departure_id(consultant_id), "departure")

    def move_departing_client(
        self, ctx: Context, consultant_id: str, client_id: uuid.UUID
    ) -> CommandResult:
        def decide(now: datetime) -> Decision:
            departure = self.departure(consultant_id)
            client = self.client(client_id)
            policy = self.policy_for(client.project_id)
            moved = client.depart(consultant_id, departure.successor_id, policy, now, ctx.trace)
            outcome = (
                "skipped"
                if not moved
                else ("pool" if departure.successor_id is None else "transferred")
            )
            departure.record_move(client.id, outcome, now, ctx.trace)
            return [client, departure], {"client_id": client.id, "outcome": outcome}

        return self._execute(ctx, decide, status_code=200)

    def complete_departure(self, ctx: Context, consultant_id: str) -> CommandResult:
        def decide(now: datetime) -> Decision:
            departure = self.departure(consultant_id)
            departure.complete(now, ctx.trace)
            return [departure], self._departure_body(departure)

        return self._execute(ctx, decide, status_code=200)

    def departure_status(self, consultant_id: str) -> dict[str, Any]:
        return jsonable_dict(self._departure_body(self.departure(consultant_id)))

    # --------------------------------------------------------------- disputes

    def open_dispute(
        self,
        ctx: Context,
        client_id: uuid.UUID,
        *,
        claimant_kind: str,
        claimant_id: str,
        reason: str,
        evidence_versions: list[int],
        report_id: str | None,
    ) -> CommandResult:
        dispute_id = str(uuid.uuid4())

        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            if claimant_kind == "channel":
                report = client.reports.get(report_id or "")
                if report is None or report.partner_id != claimant_id:
                    raise InvalidInput(
                        "report_id", "a channel disputes through one of its own reports"
                    )
            else:
                self._check_consultant(claimant_id, client.project_id, field="claimant_id")
            client.open_dispute(
                dispute_id=dispute_id,
                claimant_kind=claimant_kind,
                claimant_id=claimant_id,
                report_id=report_id,
                reason=reason,
                evidence_versions=evidence_versions,
                at=now,
                trace=ctx.trace,
            )
            locator = DisputeLocator.place(dispute_id, client.id, now, ctx.trace)
            return [client, locator], self._dispute_body(client, client.dispute(dispute_id))

        return self._execute(ctx, decide)

    def dispute_client(self, dispute_id: str) -> Client:
        try:
            uuid.UUID(dispute_id)
        except ValueError:
            raise NotFound("dispute not found") from None
        locator = self._get(DisputeLocator, dispute_locator_id(dispute_id), "dispute")
        return self.client(locator.client_id)

    def dispute(self, dispute_id: str) -> dict[str, Any]:
        client = self.dispute_client(dispute_id)
        return jsonable_dict(self._dispute_body(client, client.dispute(dispute_id)))

    def _dispute_body(self, client: Client, dispute: DisputeState) -> dict[str, Any]:
        return {
            "dispute_id": dispute.dispute_id,
            "client_id": client.id,
            "project_id": client.project_id,
            "claimant_kind": dispute.claimant_kind,
            "claimant_id": dispute.claimant_id,
            "report_id": dispute.report_id,
            "reason": dispute.reason,
            "evidence_versions": dispute.evidence_versions,
            "status": dispute.status,
            "opened_by": dispute.opened_by,
            "opened_at": dispute.opened_at,
            "opened_version": dispute.opened_version,
            "owner_at_opening": dispute.owner_at_opening,
            "rulings": dispute.rulings,
            "appeal": dispute.appeal,
            "owner": client.ownership_at(self.clock()),
        }

    def rule_dispute(
        self,
        ctx: Context,
        dispute_id: str,
        *,
        outcome: str,
        reason: str,
        evidence_versions: list[int],
    ) -> CommandResult:
        def decide(now: datetime) -> Decision:
            client = self.dispute_client(dispute_id)
            dispute = client.dispute(dispute_id)
            if outcome == "upheld" and dispute.claimant_kind == "consultant":
                # A consultant who left since the dispute opened cannot be handed the buyer.
                self._check_consultant(dispute.claimant_id, client.project_id, field="outcome")
            earlier = dispute.owner_at_opening.get("consultant_id")
            upheld_before = bool(dispute.rulings) and dispute.rulings[-1]["outcome"] == "upheld"
            if outcome == "dismissed" and upheld_before and earlier is not None:
                # Reversing restores the earlier owner: only if they have not left since.
                self._check_consultant(earlier, client.project_id, field="outcome")
            policy = self.policy_for(client.project_id)
            before = client.owner
            client.rule_dispute(
                dispute_id=dispute_id,
                outcome=outcome,
                reason=reason,
                evidence_versions=evidence_versions,
                policy=policy,
                at=now,
                trace=ctx.trace,
            )
            followers = self._follow_ruling(client, before, dispute_id, now, ctx)
            return [client, *followers], self._dispute_body(client, client.dispute(dispute_id))

        return self._execute(ctx, decide, status_code=200)

    def _follow_ruling(
        self,
        client: Client,
        before: Ownership | None,
        dispute_id: str,
        now: datetime,
        ctx: Context,
    ) -> list[Any]:
        """What else a ruling changes, saved in its transaction (deals: see Dealing)."""
        return []

    def appeal_dispute(self, ctx: Context, dispute_id: str, reason: str) -> CommandResult:
        def decide(now: datetime) -> Decision:
            client = self.dispute_client(dispute_id)
            dispute = client.appeal_dispute(dispute_id, reason, now, ctx.trace)
            return [client], self._dispute_body(client, dispute)

        return self._execute(ctx, decide, status_code=200)

    # -------------------------------------------------------------- deadlines

    def expire_report(self, stream_id: uuid.UUID, report_id: str) -> bool:
        """Issued by the deadline processor; a no-op unless validity really ran out."""
        ctx = Context(SYSTEM, f"deadline:report:{report_id}")

        def decide(now: datetime) -> Decision:
            holder = self._find(Client, stream_id) or self._find(MaskedReportPool, stream_id)
            if holder is None or report_id not in holder.reports:
                return [], {"acted": False}
            acted = holder.expire_report(report_id, now, ctx.trace)
            return ([holder] if acted else []), {"acted": acted}

        return bool(self._execute(ctx, decide, status_code=200).body["acted"])

    def expire_protection(self, client_id: uuid.UUID, epoch: int | None) -> bool:
        ctx = Context(SYSTEM, f"deadline:protection:{client_id}:{epoch}")

        def decide(now: datetime) -> Decision:
            client = self._find(Client, client_id)
            if client is None:
                return [], {"acted": False}
            policy = self.policy_for(client.project_id)
            acted = client.expire_protection(epoch, policy, now, ctx.trace)
            return ([client] if acted else []), {"acted": acted}

        return bool(self._execute(ctx, decide, status_code=200).body["acted"])

    def release_inactive(self, client_id: uuid.UUID, epoch: int | None) -> bool:
        ctx = Context(SYSTEM, f"deadline:inactive:{client_id}:{epoch}")

        def decide(now: datetime) -> Decision:
            client = self._find(Client, client_id)
            if client is None:
                return [], {"acted": False}
            policy = self.policy_for(client.project_id)
            acted = client.release_inactive(epoch, policy, now, ctx.trace)
            return ([client] if acted else []), {"acted": acted}

        return bool(self._execute(ctx, decide, status_code=200).body["acted"])
