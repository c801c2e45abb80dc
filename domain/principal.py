"""Principals: who may call Yingke, in which role, for which projects or partner.

Keys are shown once and stored as a SHA-256 digest; a key carries 256 random bits, so
a plain digest is enough and survives a rotation of YINGKE_SECRET.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput
from domain.values import NAMESPACE, check_identifier
from domain.vocabulary import ROLES, Role

PROJECT_SCOPED: tuple[Role, ...] = ("manager", "supervisor", "consultant", "finance")
KEY_PREFIX = "yk1"
# Actor ids the service itself uses: the bootstrap admin key and the deadline processor.
RESERVED_IDS = ("admin", "system")


def principal_uuid(principal_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"principal:{principal_id}")


def new_key(principal_id: str) -> str:
    encoded = base64.urlsafe_b64encode(principal_id.encode()).decode().rstrip("=")
    return f"{KEY_PREFIX}.{encoded}.{secrets.token_urlsafe(32)}"


def principal_id_from_key(key: str) -> str | None:
    parts = key.split(".")
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        return base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def validate_grant(
    role: str, partner_id: str | None, project_ids: list[str]
) -> tuple[str | None, list[str]]:
    if role not in ROLES:
        raise InvalidInput("role", f"must be one of {', '.join(ROLES)}")
    if role == "channel_agent":
        if not partner_id:
            raise InvalidInput("partner_id", "is required for a channel_agent")
        check_identifier(partner_id, "partner_id")
    elif partner_id is not None:
        raise InvalidInput("partner_id", "only a channel_agent is bound to a partner")
    for project_id in project_ids:
        check_identifier(project_id, "project_ids")
    if role in PROJECT_SCOPED and not project_ids:
        raise InvalidInput("project_ids", f"a {role} must be granted at least one project")
    return partner_id, sorted(set(project_ids))


class Principal(Aggregate):
    class Event(Aggregate.Event):
        actor: dict[str, str]
        correlation_id: str

    class PrincipalRegistered(Aggregate.Created):
        principal_id: str
        role: str
        partner_id: str | None
        project_ids: list[str]
        key_digest: str
        team_id: str | None

    class PrincipalRevoked(Aggregate.Event):
        principal_id: str
        reason: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Principal)
            aggregate.revoked = True

    def __init__(
        self,
        principal_id: str,
        role: str,
        partner_id: str | None,
        project_ids: list[str],
        key_digest: str,
        team_id: str | None,
    ) -> None:
        self.principal_id = principal_id
        self.team_id = team_id
        self.role = role
        self.partner_id = partner_id
        self.project_ids = list(project_ids)
        self.key_digest = key_digest
        self.revoked = False

    @classmethod
    def register(
        cls,
        principal_id: str,
        role: str,
        partner_id: str | None,
        project_ids: list[str],
        key: str,
        at: datetime,
        trace: dict[str, Any],
        team_id: str | None = None,
    ) -> Principal:
        check_identifier(principal_id, "id")
        if team_id is not None:
            if role not in ("consultant", "supervisor"):
                raise InvalidInput("team_id", "only consultants and supervisors belong to a team")
            check_identifier(team_id, "team_id")
        if principal_id in RESERVED_IDS:
            raise InvalidInput("id", f"{principal_id!r} is reserved for the service itself")
        partner_id, project_ids = validate_grant(role, partner_id, project_ids)
        return cls._create(
            cls.PrincipalRegistered,
            id=principal_uuid(principal_id),
            principal_id=principal_id,
            role=role,
            partner_id=partner_id,
            project_ids=project_ids,
            key_digest=key_digest(key),
            team_id=team_id,
            timestamp=at,
            **trace,
        )

    def revoke(self, reason: str, at: datetime, trace: dict[str, Any]) -> None:
        if not self.revoked:
            self.trigger_event(
                self.PrincipalRevoked,
                principal_id=self.principal_id,
                reason=reason,
                timestamp=at,
                **trace,
            )

    def accepts(self, key: str) -> bool:
        return not self.revoked and hmac.compare_digest(self.key_digest, key_digest(key))

    def covers_project(self, project_id: str) -> bool:
        """Global roles see every project; a channel agent with no list works for all."""
        return not self.project_ids or project_id in self.project_ids
