"""Per-project attribution policy, versioned by PolicyChanged events.

A project that never set a policy runs on the defaults, called version 0. Every
decision records the version it applied, so a replay judges by the rules of that day.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput, NotFound
from domain.values import NAMESPACE, format_duration, parse_duration

JUDGE_RULES = ("report_first", "visit_first")
MASKED_REPORTS = ("allowed", "forbidden")


@dataclass(frozen=True)
class Policy:
    version: int = 0
    judge_rule: str = "report_first"
    masked_reports: str = "allowed"
    report_validity: str = "P3D"
    protection: str = "P30D"

    @property
    def report_validity_delta(self) -> timedelta:
        return parse_duration(self.report_validity, "report_validity")

    @property
    def protection_delta(self) -> timedelta:
        return parse_duration(self.protection, "protection")

    def settings(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("version")
        return data

    @classmethod
    def setting_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "version"]

    @classmethod
    def from_settings(cls, version: int, settings: dict[str, Any]) -> Policy:
        """Build from stored settings; fields added later keep their defaults."""
        known = {k: v for k, v in settings.items() if k in cls.setting_names()}
        return replace(cls(), version=version, **known)


def validate_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Return complete, canonical settings; missing fields take the defaults."""
    unknown = sorted(set(settings) - set(Policy.setting_names()))
    if unknown:
        raise InvalidInput(unknown[0], "is not a policy setting", code="unknown_setting")
    merged = {**Policy().settings(), **settings}
    if merged["judge_rule"] not in JUDGE_RULES:
        raise InvalidInput("judge_rule", f"must be one of {', '.join(JUDGE_RULES)}")
    if merged["masked_reports"] not in MASKED_REPORTS:
        raise InvalidInput("masked_reports", f"must be one of {', '.join(MASKED_REPORTS)}")
    for name in ("report_validity", "protection"):
        merged[name] = format_duration(parse_duration(merged[name], name))
    return merged


class ProjectPolicy(Aggregate):
    """The stream of one project's policy versions."""

    @staticmethod
    def create_id(project_id: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"policy:{project_id}")

    class Opened(Aggregate.Created):
        project_id: str

    class PolicyChanged(Aggregate.Event):
        policy_version: int
        settings: dict[str, Any]
        actor: dict[str, str]
        correlation_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ProjectPolicy)
            aggregate.versions.append(
                (Policy.from_settings(self.policy_version, self.settings), self.timestamp)
            )

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.versions: list[tuple[Policy, datetime]] = []

    @classmethod
    def open(cls, project_id: str, at: datetime) -> ProjectPolicy:
        return cls._create(
            cls.Opened, id=cls.create_id(project_id), project_id=project_id, timestamp=at
        )

    def change(
        self, settings: dict[str, Any], at: datetime, actor: dict[str, str], correlation_id: str
    ) -> Policy:
        self.trigger_event(
            self.PolicyChanged,
            policy_version=len(self.versions) + 1,
            settings=validate_settings(settings),
            actor=actor,
            correlation_id=correlation_id,
            timestamp=at,
        )
        return self.current

    @property
    def current(self) -> Policy:
        return self.versions[-1][0] if self.versions else Policy()

    def at_version(self, version: int) -> Policy:
        if version == 0:
            return Policy()
        if not 1 <= version <= len(self.versions):
            raise NotFound(f"policy version {version} does not exist for this project")
        return self.versions[version - 1][0]

    def changed_at(self, version: int) -> datetime | None:
        return self.versions[version - 1][1] if version >= 1 else None
