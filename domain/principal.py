"""Principals: who may call Yingke, in which role, for which projects or partner.

Keys are shown once and stored as a SHA-256 digest; a key carries 256 random bits, so
a plain digest is enough and survives a rotation of YINGKE_SECRET.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from eventsourcing.domain import Aggregate

from domain.errors import Conflict, InvalidInput
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


# WeCom (企业微信) member ids: letters, digits and ``_ - . @``, at most 64 characters.
_WECOM_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
UNCHANGED: Any = object()


def check_display_name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > 64:
        raise InvalidInput("display_name", "must be 1 to 64 characters, not blank")
    if _CONTROL.search(name):
        raise InvalidInput("display_name", "must be one line without control characters")
    return name


def check_wecom_user_id(value: str | None) -> str | None:
    if value is not None and not _WECOM_USER_ID.match(value):
        raise InvalidInput("wecom_user_id", "must be a WeCom userid: 1-64 letters, digits, _ - . @")
    return value


def check_webhook(value: str | None) -> str | None:
    """An http(s) URL with a host: anything else would be fetched with surprises."""
    if value is None:
        return None
    if len(value) > 2048 or _CONTROL.search(value) or " " in value:
        raise InvalidInput(
            "notify_webhook", "must be an http or https URL of at most 2048 characters"
        )
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise InvalidInput("notify_webhook", "must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("notify_webhook", "must not carry a user name or password")
    return value


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
        # Added with the staff directory; principals registered before have none (the id
        # stands in for the name).
        display_name: str | None = None
        wecom_user_id: str | None = None
        notify_webhook: str | None = None

    class ProfileChanged(Aggregate.Event):
        """The name or the notification addresses changed; each holds its new value."""

        principal_id: str
        display_name: str | None
        wecom_user_id: str | None
        notify_webhook: str | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Principal)
            aggregate.stored_name = self.display_name
            aggregate.wecom_user_id = self.wecom_user_id
            aggregate.notify_webhook = self.notify_webhook

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
        display_name: str | None = None,
        wecom_user_id: str | None = None,
        notify_webhook: str | None = None,
    ) -> None:
        self.principal_id = principal_id
        self.stored_name = display_name
        self.wecom_user_id = wecom_user_id
        self.notify_webhook = notify_webhook
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
        display_name: str | None = None,
        wecom_user_id: str | None = None,
        notify_webhook: str | None = None,
    ) -> Principal:
        check_identifier(principal_id, "id")
        if display_name is not None:
            display_name = check_display_name(display_name)
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
            display_name=display_name,
            wecom_user_id=check_wecom_user_id(wecom_user_id),
            notify_webhook=check_webhook(notify_webhook),
            timestamp=at,
            **trace,
        )

    @property
    def display_name(self) -> str:
        """What people read: the registered name, or the id for principals without one."""
        return self.stored_name or self.principal_id

    def change_profile(
        self,
        at: datetime,
        trace: dict[str, Any],
        display_name: Any = UNCHANGED,
        wecom_user_id: Any = UNCHANGED,
        notify_webhook: Any = UNCHANGED,
    ) -> bool:
        """Set what is given (``None`` clears an address); True if anything changed."""
        if self.revoked:
            raise Conflict(f"principal {self.principal_id} is revoked", code="revoked")
        name = self.stored_name
        if display_name is not UNCHANGED:
            if display_name is None:
                raise InvalidInput("display_name", "cannot be removed, only changed")
            name = check_display_name(display_name)
        wecom = self.wecom_user_id
        if wecom_user_id is not UNCHANGED:
            wecom = check_wecom_user_id(wecom_user_id)
        webhook = self.notify_webhook
        if notify_webhook is not UNCHANGED:
            webhook = check_webhook(notify_webhook)
        if (name, wecom, webhook) == (self.stored_name, self.wecom_user_id, self.notify_webhook):
            return False
        self.trigger_event(
            self.ProfileChanged,
            principal_id=self.principal_id,
            display_name=name,
            wecom_user_id=wecom,
            notify_webhook=webhook,
            timestamp=at,
            **trace,
        )
        return True

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
