from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import InvalidInput, NotFound
from domain.policy import Policy, ProjectPolicy, validate_settings
from domain.values import parse_duration
from tests.support import START

ACTOR = {"id": "manager-1", "role": "manager"}
TRACE = {"actor": ACTOR, "correlation_id": "req-1"}


def test_a_project_without_a_policy_runs_on_the_defaults_called_version_zero() -> None:
    policy = Policy()

    assert policy.version == 0
    assert {
        "judge_rule": "report_first",
        "masked_reports": "allowed",
        "report_validity": "P3D",
        "protection": "P30D",
    }.items() <= policy.settings().items()
    assert policy.report_validity_delta == timedelta(days=3)
    assert policy.protection_delta == timedelta(days=30)


def test_missing_settings_take_the_defaults() -> None:
    settings = validate_settings({"judge_rule": "visit_first", "protection": "PT48H"})

    assert set(settings) == set(Policy.setting_names())
    assert (settings["judge_rule"], settings["masked_reports"]) == ("visit_first", "allowed")
    assert settings["report_validity"] == "P3D"
    assert parse_duration(settings["protection"], "protection") == timedelta(days=2)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"judge_rule": "first_come"}, "judge_rule"),
        ({"masked_reports": "sometimes"}, "masked_reports"),
        ({"report_validity": "P1M"}, "report_validity"),
        ({"protection": "forever"}, "protection"),
        ({"bonus": 3}, "bonus"),
    ],
)
def test_invalid_settings_are_refused_naming_the_field(
    settings: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_settings(settings)

    assert caught.value.field == field


def test_each_change_makes_a_new_version_and_old_versions_stay_readable() -> None:
    stream = ProjectPolicy.open("p1", START, TRACE)

    first = stream.change({"judge_rule": "visit_first"}, START, TRACE)
    second = stream.change({"masked_reports": "forbidden"}, START + timedelta(days=1), TRACE)

    assert (first.version, second.version) == (1, 2)
    assert stream.current == second
    assert stream.at_version(1).judge_rule == "visit_first"
    # A change states the whole policy: what it leaves out goes back to the default.
    assert stream.at_version(2).judge_rule == "report_first"
    assert stream.at_version(2).masked_reports == "forbidden"
    assert stream.at_version(0) == Policy()
    assert stream.changed_at(2) == START + timedelta(days=1)
    assert stream.changed_at(0) is None
    with pytest.raises(NotFound):
        stream.at_version(3)


def test_policy_changes_are_recorded_as_events_naming_version_actor_and_request() -> None:
    stream = ProjectPolicy.open("p1", START, TRACE)
    stream.change({"report_validity": "P1D"}, START, {**TRACE, "correlation_id": "req-9"})

    events = stream.collect_events()

    assert [type(e).__name__ for e in events] == ["Opened", "PolicyChanged"]
    changed = events[1]
    assert isinstance(changed, ProjectPolicy.PolicyChanged)
    assert changed.policy_version == 1
    assert changed.settings["report_validity"] == "P1D"
    # actor and correlation_id come from ProjectPolicy.Event, which the library's
    # metaclass makes every nested event inherit: read them as stored fields.
    assert vars(changed)["actor"] == ACTOR
    assert vars(changed)["correlation_id"] == "req-9"


def test_an_invalid_change_records_nothing() -> None:
    stream = ProjectPolicy.open("p1", START, TRACE)
    stream.collect_events()

    with pytest.raises(InvalidInput):
        stream.change({"judge_rule": "nope"}, START, TRACE)

    assert stream.collect_events() == []
    assert stream.current.version == 0


def test_settings_stored_by_an_older_release_keep_defaults_for_new_fields() -> None:
    policy = Policy.from_settings(4, {"judge_rule": "visit_first", "retired_setting": "x"})

    assert policy.version == 4
    assert policy.judge_rule == "visit_first"
    assert policy.protection == "P30D"
