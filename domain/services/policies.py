"""Policies: the attribution policy and the commission policy of each project.

Both are streams of versioned settings per project (``domain.versioned``); one service
serves both, so a deal and a report read the rules of their day the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic

from domain.commission import CommissionPolicy, CommissionRules
from domain.errors import Conflict
from domain.policy import Policy, ProjectPolicy
from domain.services.uow import Context, Done, UnitOfWork
from domain.services.watched import WatchedStreams
from domain.values import check_identifier
from domain.versioned import S, VersionedSettings

# A project without a policy stream reads the defaults: one shared instance (read-only,
# as every kept copy's policy is), not a new one per report.
_DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class SettingsVersion(Generic[S]):
    """One version of a project's settings and when it took effect (None: defaults)."""

    project_id: str
    value: S
    since: datetime | None


class Policies:
    def __init__(self, uow: UnitOfWork, watched: WatchedStreams | None = None) -> None:
        self.uow = uow
        # Every report reads its project's policy: a copy kept current from the log.
        self.watched = watched or WatchedStreams(uow, [ProjectPolicy, CommissionPolicy])

    # ----------------------------------------------------- attribution policy

    def policy_for(self, project_id: str) -> Policy:
        stream = self.watched.find(ProjectPolicy, ProjectPolicy.create_id(project_id))
        return stream.current if stream else _DEFAULT_POLICY

    def policy_version(self, project_id: str, version: int | None) -> SettingsVersion[Policy]:
        return self._version(ProjectPolicy, project_id, version)

    def set_policy(
        self,
        ctx: Context,
        project_id: str,
        settings: dict[str, Any],
        expected_version: int | None = None,
    ) -> Done[SettingsVersion[Policy]]:
        return self._set(ProjectPolicy, ctx, project_id, settings, expected_version)

    # ------------------------------------------------------ commission policy

    def commission_rules(self, project_id: str, version: int | None = None) -> CommissionRules:
        return self._version(CommissionPolicy, project_id, version).value

    def commission_policy(
        self, project_id: str, version: int | None = None
    ) -> SettingsVersion[CommissionRules]:
        return self._version(CommissionPolicy, project_id, version)

    def set_commission_policy(
        self,
        ctx: Context,
        project_id: str,
        settings: dict[str, Any],
        expected_version: int | None = None,
    ) -> Done[SettingsVersion[CommissionRules]]:
        return self._set(CommissionPolicy, ctx, project_id, settings, expected_version)

    # ---------------------------------------------------------------- shared

    def _version(
        self, cls: type[VersionedSettings[S]], project_id: str, version: int | None
    ) -> SettingsVersion[S]:
        """The version in force (or ``version``) and when it took effect."""
        stream = self.watched.find(cls, cls.create_id(project_id))
        if stream is None:
            if version not in (None, 0):
                raise cls.missing(version)
            return SettingsVersion(project_id, cls.defaults(), None)
        value = stream.current if version is None else stream.at_version(version)
        return SettingsVersion(project_id, value, stream.changed_at(value.version))

    def _set(
        self,
        cls: type[VersionedSettings[S]],
        ctx: Context,
        project_id: str,
        settings: dict[str, Any],
        expected_version: int | None,
    ) -> Done[SettingsVersion[S]]:
        check_identifier(project_id, "project_id")

        def decide(now: datetime) -> tuple[list[Any], SettingsVersion[S]]:
            stream = self.uow.find(cls, cls.create_id(project_id))
            if stream is None:
                stream = cls.open(project_id, now, ctx.trace)
            if expected_version is not None and stream.current.version != expected_version:
                raise Conflict(
                    f"{cls.NAME} is at version {stream.current.version}, not {expected_version}",
                    code="version_mismatch",
                )
            value = stream.change(settings, now, ctx.trace)
            return [stream], SettingsVersion(project_id, value, now)

        return self.uow.run(ctx, decide)
