"""Intake: principals, policies, reports (报备), visits (到访) and the evidence chain."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from domain.attribution import decide_filing, decide_masked_filing, decide_visit
from domain.client import Client, no_owner
from domain.errors import Conflict, InvalidInput, NotFound
from domain.locator import ReportLocator, locator_id
from domain.masked_pool import MaskedReportPool
from domain.policy import ProjectPolicy
from domain.principal import Principal, principal_id_from_key, principal_uuid
from domain.reports import ReportState
from domain.service import CommandResult, Context, Decision, Service, jsonable_dict
from domain.values import (
    check_identifier,
    mask_name,
    mask_phone,
    normalize_phone,
    parse_masked_phone,
)
from domain.versioned import S, VersionedSettings, settings_body

VISIT_ROLES = ("consultant", "supervisor", "manager")
# Event fields that are bookkeeping, not business facts, in the history view.
_HIDDEN_FIELDS = {
    "originator_id",
    "originator_version",
    "originator_topic",
    "timestamp",
    "actor",
    "correlation_id",
    "phone_hash",
    "pii",
}


class Intake(Service):
    # ------------------------------------------------------------ principals

    def register_principal(
        self,
        ctx: Context,
        principal_id: str,
        role: str,
        partner_id: str | None,
        project_ids: list[str],
        key: str,
        team_id: str | None = None,
    ) -> CommandResult:
        def decide(now: datetime) -> Decision:
            if self._find(Principal, principal_uuid(principal_id)) is not None:
                raise Conflict(f"principal {principal_id} already exists", code="exists")
            principal = Principal.register(
                principal_id, role, partner_id, project_ids, key, now, ctx.trace, team_id
            )
            body = self._principal_body(principal)
            # The key is shown once: a replayed response must not carry it.
            return [principal], {**body, "key": key, "_idempotent_body": {**body, "key": None}}

        return self._execute(ctx, decide)

    @staticmethod
    def _principal_body(p: Principal) -> dict[str, Any]:
        return {
            "id": p.principal_id,
            "role": p.role,
            "partner_id": p.partner_id,
            "project_ids": p.project_ids,
            "team_id": p.team_id,
            "revoked": p.revoked,
            "created_at": p.created_on,
        }

    def revoke_principal(self, ctx: Context, principal_id: str, reason: str) -> CommandResult:
        def decide(now: datetime) -> Decision:
            principal = self._get(Principal, principal_uuid(principal_id), "principal")
            principal.revoke(reason, now, ctx.trace)
            return [principal], self._principal_body(principal)

        return self._execute(ctx, decide, status_code=200)

    def principal(self, principal_id: str) -> Principal | None:
        return self._find(Principal, principal_uuid(principal_id))

    def authenticate(self, key: str) -> Principal | None:
        principal_id = principal_id_from_key(key)
        if principal_id is None:
            return None
        principal = self.principal(principal_id)
        if principal is None or not principal.accepts(key):
            return None
        return principal

    # ---------------------------------------------------------------- policy

    def policy_version(self, project_id: str, version: int | None) -> dict[str, Any]:
        policy, since = self._settings_version(ProjectPolicy, project_id, version)
        return settings_body(project_id, policy, since)

    def set_policy(
        self,
        ctx: Context,
        project_id: str,
        settings: dict[str, Any],
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._set_settings(ProjectPolicy, ctx, project_id, settings, expected_version)

    # The attribution policy and the commission policy (domain.dealing) are both streams
    # of versioned settings per project; these serve both.

    def _settings_version(
        self, cls: type[VersionedSettings[S]], project_id: str, version: int | None
    ) -> tuple[S, datetime | None]:
        """The version in force (or ``version``) and when it took effect."""
        stream = self._find(cls, cls.create_id(project_id))
        if stream is None:
            if version not in (None, 0):
                raise cls.missing(version)
            return cls.defaults(), None
        value = stream.current if version is None else stream.at_version(version)
        return value, stream.changed_at(value.version)

    def _set_settings(
        self,
        cls: type[VersionedSettings[S]],
        ctx: Context,
        project_id: str,
        settings: dict[str, Any],
        expected_version: int | None,
    ) -> CommandResult:
        check_identifier(project_id, "project_id")

        def decide(now: datetime) -> Decision:
            stream = self._find(cls, cls.create_id(project_id))
            if stream is None:
                stream = cls.open(project_id, now, ctx.trace)
            if expected_version is not None and stream.current.version != expected_version:
                raise Conflict(
                    f"{cls.NAME} is at version {stream.current.version}, not {expected_version}",
                    code="version_mismatch",
                )
            value = stream.change(settings, now, ctx.trace)
            return [stream], settings_body(project_id, value, now)

        return self._execute(ctx, decide, status_code=200)

    # --------------------------------------------------------------- reports

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
    ) -> CommandResult:
        check_identifier(project_id, "project_id")
        check_identifier(partner_id, "partner_id")
        check_identifier(agent_id, "agent_id")
        masked = parse_masked_phone(phone)
        number = None if masked else normalize_phone(phone)
        report_id = str(uuid.uuid4())

        def decide(now: datetime) -> Decision:
            policy = self.policy_for(project_id)
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
                stream = self._find(MaskedReportPool, pool_id) or MaskedReportPool.open(
                    pool_id, project_id=project_id, phone_masked=masked, at=now, trace=ctx.trace
                )
                decision = decide_masked_filing(policy, now, partner_id, stream.valid_claims(now))
                pii = self.vault.seal(uuid.UUID(report_id), pii_fields)
                phone_masked = masked
            else:
                assert number is not None
                stream = self._client_for(ctx, project_id, number, now)
                decision = decide_filing(
                    policy, now, partner_id, stream.owner_view(), stream.valid_claims(now)
                )
                pii = self.vault.seal(stream.id, pii_fields)
                phone_masked = stream.phone_masked
            report = stream.record_report(
                report_id=report_id,
                partner_id=partner_id,
                agent_id=agent_id,
                masked=masked is not None,
                phone_masked=phone_masked,
                expected_visit_at=expected_visit_at,
                pii=pii,
                decision=decision,
                valid_until=valid_until,
                policy_version=policy.version,
                at=now,
                trace=ctx.trace,
            )
            locator = ReportLocator.place(
                report_id, stream.id, project_id, partner_id, now, ctx.trace
            )
            body = self._report_body(project_id, report, None if masked else stream.id, now)
            return [stream, locator], body

        return self._execute(ctx, decide)

    def _client_for(self, ctx: Context, project_id: str, number: str, now: datetime) -> Client:
        client_id = self.keyer.client_id(project_id, number)
        client = self._find(Client, client_id)
        if client is None:
            client = Client.register(
                client_id,
                project_id=project_id,
                phone_masked=mask_phone(number),
                phone_hash=self.keyer.digest(number),
                pii=self.vault.seal(client_id, {"phone": number}),
                at=now,
                trace=ctx.trace,
            )
        return client

    def _report_body(
        self,
        project_id: str,
        report: ReportState,
        client_id: uuid.UUID | str | None,
        now: datetime,
    ) -> dict[str, Any]:
        return {
            "report_id": report.report_id,
            "project_id": project_id,
            "partner_id": report.partner_id,
            "agent_id": report.agent_id,
            "status": report.status_at(now),
            "reason": report.reason,
            "client_id": client_id,
            "phone_masked": report.phone_masked,
            "masked": report.masked,
            "filed_at": report.filed_at,
            "valid_until": report.valid_until if report.status != "rejected" else None,
            "expected_visit_at": report.expected_visit_at,
            "policy_version": report.policy_version,
        }

    def report(self, report_id: str) -> dict[str, Any]:
        try:
            uuid.UUID(report_id)
        except ValueError:
            raise NotFound("report not found") from None
        locator = self._get(ReportLocator, locator_id(report_id), "report")
        holder = self._find(Client, locator.stream_id) or self._get(
            MaskedReportPool, locator.stream_id, "report"
        )
        report = holder.report(report_id)
        client_id = holder.id if isinstance(holder, Client) else report.client_id
        body = self._report_body(locator.project_id, report, client_id, self.clock())
        subject = holder.id if isinstance(holder, Client) else uuid.UUID(report_id)
        opened = self.vault.open(subject, report.pii) or {}
        body["client_name_masked"] = mask_name(opened.get("name", "")) or None
        return jsonable_dict(body)

    # ---------------------------------------------------------------- visits

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
    ) -> CommandResult:
        check_identifier(project_id, "project_id")
        number = normalize_phone(phone)
        if partner_id is not None:
            check_identifier(partner_id, "partner_id")
        if agent_id is not None:
            check_identifier(agent_id, "agent_id")
        self._check_consultant(consultant_id, project_id)
        visit_id = str(uuid.uuid4())

        def decide(now: datetime) -> Decision:
            policy = self.policy_for(project_id)
            client = self._client_for(ctx, project_id, number, now)
            pool = self._find(
                MaskedReportPool, self.keyer.masked_pool_id(project_id, mask_phone(number))
            )
            pooled = pool.valid_claims(now) if pool else []
            claims = client.valid_claims(now) + [
                c for c in pooled if c.report_id not in client.passed_over
            ]
            decision = decide_visit(policy, now, client.owner_view(), claims, partner_id)
            masked_winner = None
            if decision.winner is not None and decision.winner.masked:
                assert pool is not None
                masked_winner = self._bring_over(pool, client, decision.winner.report_id)
                pool.consume(decision.winner.report_id, client.id, visit_id, now, ctx.trace)
            client.record_visit(
                visit_id=visit_id,
                consultant_id=consultant_id,
                partner_id=partner_id,
                agent_id=agent_id,
                pii=self.vault.seal(client.id, {"name": client_name}),
                decision=decision,
                masked_winner=masked_winner,
                policy=policy,
                at=now,
                trace=ctx.trace,
            )
            owner = client.ownership_at(now)
            body = {
                "client_id": client.id,
                "visit_id": visit_id,
                "outcome": decision.kind,
                "owner": owner,
            }
            return [client, pool if masked_winner else None], body

        return self._execute(ctx, decide)

    def _bring_over(self, pool: MaskedReportPool, client: Client, report_id: str) -> dict[str, Any]:
        """The masked report's facts, re-sealed under the buyer's own key."""
        report = pool.report(report_id)
        assert report.valid_until is not None
        opened = self.vault.open(uuid.UUID(report_id), report.pii) or {}
        return {
            "report_id": report_id,
            "pool_id": pool.id,
            "partner_id": report.partner_id,
            "agent_id": report.agent_id,
            "filed_at": report.filed_at,
            "valid_until": report.valid_until,
            "expected_visit_at": report.expected_visit_at,
            "pii": self.vault.seal(client.id, opened),
            "policy_version": report.policy_version,
        }

    def _check_consultant(
        self, consultant_id: str, project_id: str, field: str = "consultant_id"
    ) -> None:
        check_identifier(consultant_id, field)
        principal = self.principal(consultant_id)
        if (
            principal is None
            or principal.revoked
            or principal.role not in VISIT_ROLES
            or not principal.covers_project(project_id)
        ):
            raise InvalidInput(
                field,
                f"must name an active consultant, supervisor or manager of project {project_id}",
                code="unknown_consultant",
            )

    # --------------------------------------------------------------- clients

    def lookup_client(self, project_id: str, phone: str) -> uuid.UUID:
        check_identifier(project_id, "project_id")
        client_id = self.keyer.client_id(project_id, normalize_phone(phone))
        if self._find(Client, client_id) is None:
            raise NotFound("no client with this phone number at this project")
        return client_id

    def client(self, client_id: uuid.UUID) -> Client:
        return self._get(Client, client_id, "client")

    def client_summary(self, client_id: uuid.UUID) -> dict[str, Any]:
        client = self.client(client_id)
        now = self.clock()
        return jsonable_dict(
            {
                "client_id": client.id,
                "project_id": client.project_id,
                "phone_masked": client.phone_masked,
                "client_name_masked": self._latest_name(client),
                "registered_at": client.created_on,
                "version": client.version,
                "owner": client.ownership_at(now),
                "visits": len(client.visits),
                "last_visit_at": client.visits[-1].at if client.visits else None,
                "reports": [
                    self._report_body(client.project_id, r, client.id, now)
                    for r in client.reports.values()
                ],
                "personal_data_erased": client.erased,
            }
        )

    def _latest_name(self, client: Client) -> str | None:
        tokens = [r.pii for r in client.reports.values()]
        for token in reversed(tokens):
            opened = self.vault.open(client.id, token)
            if opened and opened.get("name"):
                return mask_name(opened["name"])
        return None

    def history(self, client_id: uuid.UUID) -> list[dict[str, Any]]:
        client = self.client(client_id)
        return [self._describe(client.id, e) for e in self._events(client_id)]

    def _events(self, aggregate_id: uuid.UUID) -> Iterator[Any]:
        return iter(self.events.get(aggregate_id))

    def _describe(self, subject: uuid.UUID, event: Any) -> dict[str, Any]:
        data = {k: v for k, v in vars(event).items() if k not in _HIDDEN_FIELDS}
        token = getattr(event, "pii", None)
        if token:
            opened = self.vault.open(subject, token)
            if opened is None:
                data["personal_data"] = "erased"
            elif "name" in opened:
                data["client_name_masked"] = mask_name(opened["name"])
        return jsonable_dict(
            {
                "version": event.originator_version,
                "type": type(event).__name__,
                "occurred_at": event.timestamp,
                "actor": getattr(event, "actor", None),
                "correlation_id": getattr(event, "correlation_id", None),
                "data": data,
            }
        )

    def ownership_as_of(self, client_id: uuid.UUID, at: datetime) -> dict[str, Any]:
        """Replay the client's stream up to ``at`` and judge the owner at that instant."""
        events = list(self._events(client_id))
        if not events:
            raise NotFound("client not found")
        upto = [e for e in events if e.timestamp <= at]
        if not upto:
            return jsonable_dict(
                {
                    "client_id": client_id,
                    "at": at,
                    "owner": no_owner(),
                    "decided_by": None,
                    "policy_version": None,
                    "replayed_to_version": 0,
                }
            )
        version = upto[-1].originator_version
        state = self._get_version(client_id, version)
        owner = state.ownership_at(at)
        decided_by = None
        if owner["decided_by_version"] is not None:
            decider = events[owner["decided_by_version"] - 1]
            decided_by = self._describe(client_id, decider)
        return jsonable_dict(
            {
                "client_id": client_id,
                "at": at,
                "owner": owner,
                "decided_by": decided_by,
                "policy_version": owner["policy_version"],
                "replayed_to_version": version,
            }
        )

    def _get_version(self, client_id: uuid.UUID, version: int) -> Client:
        client = self._find(Client, client_id, version=version)
        if client is None:
            raise NotFound("client not found")
        return client

    def erase_personal_data(self, ctx: Context, client_id: uuid.UUID) -> CommandResult:
        """Destroy the buyer's key and the keys of masked reports matched to them."""

        def decide(now: datetime) -> Decision:
            client = self.client(client_id)
            for report in client.reports.values():
                if report.masked:
                    self.vault.erase(uuid.UUID(report.report_id))
            self.vault.erase(client.id)
            client.erase(now, ctx.trace)
            return [client], {"client_id": client.id, "personal_data_erased": True}

        return self._execute(ctx, decide, status_code=200)
