"""Per-project attribution policy, versioned by PolicyChanged events.

A project that never set a policy runs on the defaults, called version 0. Every
decision records the version it applied, so a replay judges by the rules of that day.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import timedelta
from functools import lru_cache
from typing import Any

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput
from domain.values import NAMESPACE, check_identifier, parse_duration, zone
from domain.versioned import VersionedSettings
from domain.vocabulary import GRADES, JUDGE_RULES, MASKED_REPORTS, ON_EXPIRY

DURATION_SETTINGS = (
    "report_validity",
    "protection",
    "protection_extension",
    "protection_max",
    "inactivity_release",
    "first_follow_up",
    "dormant_after",
    "negotiation_escalation",
    "recent_visit_window",
)


def _default_cadence() -> dict[str, str]:
    # Seeds: A-grade buyers every 3 days, B weekly, C monthly.
    return {"A": "P3D", "B": "P7D", "C": "P30D"}


def _default_escalation() -> dict[str, str]:
    # An overdue follow-up goes to the supervisor a day later whatever the grade: the
    # fixed rule before escalation became a policy field, so old projects keep it.
    return {"A": "P1D", "B": "P1D", "C": "P1D"}


@dataclass(frozen=True)
class Policy:
    version: int = 0
    judge_rule: str = "report_first"
    masked_reports: str = "allowed"
    # The office's clock: "today", "this week" and the times people read are in this zone.
    time_zone: str = "Asia/Shanghai"
    report_validity: str = "P3D"
    protection: str = "P30D"
    protection_extension: str = "P3D"
    protection_max: str = "P90D"
    inactivity_release: str = "P30D"
    first_follow_up: str = "PT24H"
    cadence: dict[str, str] = field(default_factory=_default_cadence)
    on_expiry: str = "pool"
    expiry_manager_id: str | None = None
    pool_claims_per_month: int = 5
    pool_claim_approval: bool = False
    # The seeds' rules of the working day (domain.md): 7 days without activity → 待激活;
    # negotiation over 15 days → the manager steps in; a report is void when the buyer
    # was seen at the office in the prior 7 days; overdue follow-ups escalate per grade;
    # a supervisor's loss review states its reasons.
    dormant_after: str = "P7D"
    negotiation_escalation: str = "P15D"
    recent_visit_window: str = "P7D"
    escalate_after: dict[str, str] = field(default_factory=_default_escalation)
    loss_review_comment_required: bool = True

    def delta(self, name: str) -> timedelta:
        value = getattr(self, name)
        assert isinstance(value, str)
        return parse_duration(value, name)

    @property
    def report_validity_delta(self) -> timedelta:
        return self.delta("report_validity")

    @property
    def protection_delta(self) -> timedelta:
        return self.delta("protection")

    def cadence_delta(self, grade: str | None) -> timedelta | None:
        """How long after a follow-up the next one is due; ungraded buyers have none."""
        if grade is None:
            return None
        return parse_duration(self.cadence[grade], f"cadence.{grade}")

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
    if not isinstance(merged["time_zone"], str):
        raise InvalidInput("time_zone", "must be an IANA time zone such as Asia/Shanghai")
    zone(merged["time_zone"])  # validates
    for name in DURATION_SETTINGS:
        parse_duration(merged[name], name)  # validates; the text is kept as written
    if parse_duration(merged["protection_max"], "protection_max") < parse_duration(
        merged["protection"], "protection"
    ):
        raise InvalidInput("protection_max", "must not be shorter than protection")
    cadence = merged["cadence"]
    if not isinstance(cadence, dict) or set(cadence) - set(GRADES):
        raise InvalidInput("cadence", "must map grades A, B and C to ISO-8601 durations")
    merged["cadence"] = {**_default_cadence(), **cadence}
    for grade, value in merged["cadence"].items():
        parse_duration(value, f"cadence.{grade}")
    escalation = merged["escalate_after"]
    if not isinstance(escalation, dict) or set(escalation) - set(GRADES):
        raise InvalidInput("escalate_after", "must map grades A, B and C to ISO-8601 durations")
    merged["escalate_after"] = {**_default_escalation(), **escalation}
    for grade, value in merged["escalate_after"].items():
        parse_duration(value, f"escalate_after.{grade}")
    if merged["on_expiry"] not in ON_EXPIRY:
        raise InvalidInput("on_expiry", f"must be one of {', '.join(ON_EXPIRY)}")
    if merged["on_expiry"] == "manager":
        if not merged["expiry_manager_id"]:
            raise InvalidInput(
                "expiry_manager_id", "is required when expired clients go to the manager"
            )
        check_identifier(merged["expiry_manager_id"], "expiry_manager_id")
    claims = merged["pool_claims_per_month"]
    if not isinstance(claims, int) or isinstance(claims, bool) or not 0 <= claims <= 10_000:
        raise InvalidInput("pool_claims_per_month", "must be a whole number from 0 to 10000")
    if not isinstance(merged["pool_claim_approval"], bool):
        raise InvalidInput("pool_claim_approval", "must be true or false")
    if not isinstance(merged["loss_review_comment_required"], bool):
        raise InvalidInput("loss_review_comment_required", "must be true or false")
    return merged


@lru_cache(maxsize=4096)
def _policy_id(project_id: str) -> uuid.UUID:
    # Every report reads its project's policy: uuid5 each time was ~10 µs of it.
    return uuid.uuid5(NAMESPACE, f"policy:{project_id}")


class ProjectPolicy(VersionedSettings[Policy]):
    """The stream of one project's policy versions."""

    NAME = "policy"
    MISSING = "policy version {version} does not exist for this project"

    @staticmethod
    def create_id(project_id: str) -> uuid.UUID:
        return _policy_id(project_id)

    class PolicyChanged(Aggregate.Event):
        policy_version: int
        settings: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ProjectPolicy)
            policy = Policy.from_settings(self.policy_version, self.settings)
            aggregate.record(policy, self.timestamp)

    @staticmethod
    def defaults() -> Policy:
        return Policy()

    @staticmethod
    def validate(settings: dict[str, Any]) -> dict[str, Any]:
        return validate_settings(settings)

    def changed_event(self) -> type[Aggregate.Event]:
        return self.PolicyChanged
