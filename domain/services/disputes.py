"""Disputes (申诉): a claimant contests a buyer's attribution; a manager rules.

A ruling that moves the attribution moves it on the buyer's open deals too, in the
ruling's own transaction: ``rule_dispute`` calls ``Deals.follow_ruling`` for that, here
and nowhere else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.client import Client
from domain.disputes import DisputeState
from domain.errors import InvalidInput, NotFound
from domain.locator import DisputeLocator, dispute_locator_id
from domain.ports import Clock, PersonalDataVault
from domain.sealing import open_places, seal_text
from domain.services.clients import Clients
from domain.services.deals import Deals
from domain.services.policies import Policies
from domain.services.principals import Principals
from domain.services.uow import Context, Done, UnitOfWork


@dataclass(frozen=True)
class DisputeView:
    client: Client
    dispute: DisputeState
    at: datetime
    # Free text by place ("dispute:<id>", "ruling:<version>", "appeal:<id>"), opened for
    # a reader; None: sealed.
    texts: dict[str, Any] | None = None


class Disputes:
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        vault: PersonalDataVault,
        policies: Policies,
        principals: Principals,
        clients: Clients,
        deals: Deals,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.vault = vault
        self.policies = policies
        self.principals = principals
        self.clients = clients
        self.deals = deals

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
    ) -> Done[DisputeView]:
        dispute_id = str(uuid.uuid4())

        def decide(now: datetime) -> tuple[list[Any], DisputeView]:
            client = self.clients.client(client_id)
            if claimant_kind == "channel":
                report = client.reports.get(report_id or "")
                if report is None or report.partner_id != claimant_id:
                    raise InvalidInput(
                        "report_id", "a channel disputes through one of its own reports"
                    )
            else:
                self.principals.check_consultant(claimant_id, client.project_id, "claimant_id")
            client.open_dispute(
                dispute_id=dispute_id,
                claimant_kind=claimant_kind,
                claimant_id=claimant_id,
                report_id=report_id,
                reason="",
                evidence_versions=evidence_versions,
                at=now,
                trace=ctx.trace,
                sealed=seal_text(self.vault, client.id, reason=reason),
            )
            locator = DisputeLocator.place(dispute_id, client.id, now, ctx.trace)
            return [client, locator], DisputeView(client, client.dispute(dispute_id), now)

        return self.uow.run(ctx, decide)

    def dispute_client(self, dispute_id: str) -> Client:
        try:
            uuid.UUID(dispute_id)
        except ValueError:
            raise NotFound("dispute not found") from None
        locator = self.uow.get(DisputeLocator, dispute_locator_id(dispute_id), "dispute")
        return self.clients.client(locator.client_id)

    def dispute(
        self, dispute_id: str, reveal: bool = False, author: str | None = None
    ) -> DisputeView:
        """The dispute; its free text opened when ``reveal``, else only what ``author``
        (a principal id) wrote."""
        return self.view(self.dispute_client(dispute_id), dispute_id, reveal, author)

    def view(
        self, client: Client, dispute_id: str, reveal: bool = False, author: str | None = None
    ) -> DisputeView:
        """``dispute`` of a buyer the caller has just read (the evidence bundle)."""
        dispute = client.dispute(dispute_id)
        if not reveal and author is None:
            return DisputeView(client, dispute, self.clock())
        # Each place with who wrote it and the version that did: a buyer erased and
        # brought back keeps the text up to the return erased, clear text included.
        written: dict[str, tuple[Any, dict[str, str], int]] = {
            f"dispute:{dispute_id}": (dispute.reason, dispute.opened_by, dispute.opened_version)
        }
        written.update(
            {
                f"ruling:{r['version']}": (r.get("reason"), r["ruled_by"], r["version"])
                for r in dispute.rulings
            }
        )
        if dispute.appeal is not None:
            appeal = dispute.appeal
            written[f"appeal:{dispute_id}"] = (
                appeal.get("reason"),
                appeal["appealed_by"],
                appeal["version"],
            )
        texts: dict[str, Any] = {}
        for place, (clear, writer, version) in written.items():
            if not reveal and writer.get("id") != author:
                continue
            erased = client.text_erased(version)
            texts |= open_places(
                self.vault, client.id, client.sealed_texts, {place: clear}, erased=erased
            )
        return DisputeView(client, dispute, self.clock(), texts)

    def rule_dispute(
        self,
        ctx: Context,
        dispute_id: str,
        *,
        outcome: str,
        reason: str,
        evidence_versions: list[int],
    ) -> Done[DisputeView]:
        def decide(now: datetime) -> tuple[list[Any], DisputeView]:
            client = self.dispute_client(dispute_id)
            dispute = client.dispute(dispute_id)
            check = self.principals.check_consultant
            if outcome == "upheld" and dispute.claimant_kind == "consultant":
                # A consultant who left since the dispute opened cannot be handed the buyer.
                check(dispute.claimant_id, client.project_id, "outcome")
            earlier = dispute.owner_at_opening.get("consultant_id")
            upheld_before = bool(dispute.rulings) and dispute.rulings[-1]["outcome"] == "upheld"
            if outcome == "dismissed" and upheld_before and earlier is not None:
                # Reversing restores the earlier owner: only if they have not left since.
                check(earlier, client.project_id, "outcome")
            before = client.owner
            client.rule_dispute(
                dispute_id=dispute_id,
                outcome=outcome,
                reason="",
                evidence_versions=evidence_versions,
                policy=self.policies.policy_for(client.project_id),
                at=now,
                trace=ctx.trace,
                sealed=seal_text(self.vault, client.id, reason=reason),
            )
            deals = self.deals.follow_ruling(client, before, dispute_id, now, ctx)
            return [client, *deals], DisputeView(client, client.dispute(dispute_id), now)

        return self.uow.run(ctx, decide)

    def appeal_dispute(self, ctx: Context, dispute_id: str, reason: str) -> Done[DisputeView]:
        def decide(now: datetime) -> tuple[list[Any], DisputeView]:
            client = self.dispute_client(dispute_id)
            sealed = seal_text(self.vault, client.id, reason=reason)
            dispute = client.appeal_dispute(dispute_id, "", now, ctx.trace, sealed)
            return [client], DisputeView(client, dispute, now)

        return self.uow.run(ctx, decide)
