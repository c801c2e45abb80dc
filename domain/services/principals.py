"""Principals: who may call Yingke, with which role, at which projects."""

from __future__ import annotations

from datetime import datetime

from domain.errors import Conflict, InvalidInput
from domain.principal import Principal, principal_id_from_key, principal_uuid
from domain.services.uow import Context, Done, UnitOfWork
from domain.services.watched import WatchedStreams
from domain.values import check_identifier

# The roles that receive buyers: visits, transfers, pool claims and successors name one.
VISIT_ROLES = ("consultant", "supervisor", "manager")


class Principals:
    def __init__(self, uow: UnitOfWork, watched: WatchedStreams | None = None) -> None:
        self.uow = uow
        # Authentication and checks read a copy kept current from the log.
        self.watched = watched or WatchedStreams(uow, [Principal])

    def register_principal(
        self,
        ctx: Context,
        principal_id: str,
        role: str,
        partner_id: str | None,
        project_ids: list[str],
        key: str,
        team_id: str | None = None,
        display_name: str | None = None,
        wecom_user_id: str | None = None,
        notify_webhook: str | None = None,
    ) -> Done[Principal]:
        def decide(now: datetime) -> tuple[list[Principal], Principal]:
            if self.principal(principal_id) is not None:
                raise Conflict(f"principal {principal_id} already exists", code="exists")
            principal = Principal.register(
                principal_id,
                role,
                partner_id,
                project_ids,
                key,
                now,
                ctx.trace,
                team_id,
                display_name=display_name,
                wecom_user_id=wecom_user_id,
                notify_webhook=notify_webhook,
            )
            return [principal], principal

        return self.uow.run(ctx, decide)

    def change_profile(
        self, ctx: Context, principal_id: str, changes: dict[str, str | None]
    ) -> Done[Principal]:
        """Set the name or notification addresses named in ``changes`` (None clears one)."""
        unknown = set(changes) - {"display_name", "wecom_user_id", "notify_webhook"}
        if unknown:
            raise InvalidInput(sorted(unknown)[0], "cannot be changed here")

        def decide(now: datetime) -> tuple[list[Principal], Principal]:
            principal = self.uow.get(Principal, principal_uuid(principal_id), "principal")
            principal.change_profile(now, ctx.trace, **changes)
            return [principal], principal

        return self.uow.run(ctx, decide)

    def revoke_principal(self, ctx: Context, principal_id: str, reason: str) -> Done[Principal]:
        def decide(now: datetime) -> tuple[list[Principal], Principal]:
            principal = self.uow.get(Principal, principal_uuid(principal_id), "principal")
            principal.revoke(reason, now, ctx.trace)
            return [principal], principal

        return self.uow.run(ctx, decide)

    def principal(self, principal_id: str) -> Principal | None:
        """The principal as of now: a shared copy, never to be changed by the caller."""
        return self.watched.find(Principal, principal_uuid(principal_id))

    def authenticate(self, key: str) -> Principal | None:
        principal_id = principal_id_from_key(key)
        if principal_id is None:
            return None
        principal = self.principal(principal_id)
        if principal is None or not principal.accepts(key):
            return None
        return principal

    def check_consultant(
        self, consultant_id: str, project_id: str, field: str = "consultant_id"
    ) -> None:
        """Refuse unless ``consultant_id`` is an active receiver of buyers at the project."""
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
