"""Hand-made bad inputs get a 4xx problem naming the field, on SQLite and on PostgreSQL.

Each case here once answered 500 (OverflowError, RecursionError, psycopg.DataError,
_csv.Error) or was silently accepted. After the refusal, a normal request still works
and nothing was recorded.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.vocabulary import DEAL_STAGES, ORIENTATIONS
from tests.http.conftest import Api, make_api


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    env = {}
    if request.param == "postgres":
        env["YINGKE_DATABASE_URL"] = request.getfixturevalue("pg_url")
    yield from make_api(tmp_path, env)


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    return problem


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def report(api: Api, **overrides: Any) -> dict[str, Any]:
    return {
        "project_id": api.project,
        "partner_id": "partner-a",
        "agent_id": "agent-1",
        "client_name": "李雷",
        "phone": "13912345678",
        **overrides,
    }


@pytest.mark.parametrize(
    "setting",
    [
        "report_validity",
        "protection_max",
        "inactivity_release",
        "first_follow_up",
        "dormant_after",
        "negotiation_escalation",
        "recent_visit_window",
    ],
)
@pytest.mark.parametrize("value", ["P99999999D", "P99999999999999999999D", "P3654D"])
def test_policy_durations_past_ten_years_are_refused(
    any_api: Api, setting: str, value: str
) -> None:
    api = any_api
    response = api.client.put(
        f"/v1/projects/{api.project}/policy", json={setting: value}, headers=api.admin
    )
    assert_problem(response, 422, setting)
    # Nothing changed: the project still runs on the defaults and still takes reports.
    current = api.client.get(f"/v1/projects/{api.project}/policy", headers=api.admin)
    assert current.json()["version"] == 0
    filed = api.client.post("/v1/reports", json=report(api), headers=api.admin)
    assert filed.status_code == 201, filed.text


def test_a_grade_escalation_past_ten_years_is_refused_naming_the_grade(any_api: Api) -> None:
    api = any_api
    response = api.client.put(
        f"/v1/projects/{api.project}/policy",
        json={"escalate_after": {"C": "P3654D"}},
        headers=api.admin,
    )
    assert_problem(response, 422, "escalate_after.C")
    current = api.client.get(f"/v1/projects/{api.project}/policy", headers=api.admin)
    assert current.json()["version"] == 0


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/views/funnel?day_from=9999-12-31T23:59:59%2B00:00", "day_from"),
        ("/v1/views/channels?day_to=0001-01-01T00:00:00%2B14:00", "day_to"),
        ("/v1/clients?registered_from=0001-01-01T00:00:00%2B14:00", "registered_from"),
        ("/v1/reports?filed_from=2026-03-01T10:00:00", "filed_from"),
        ("/v1/tasks?due_before=2026-03-01T10:00:00", "due_before"),
        ("/v1/views/lost-reasons?month=2026-13", "month"),
        ("/v1/views/payments?month_from=2026-00", "month_from"),
        ("/v1/clients?project_id=a%00b", "project_id"),
        ("/v1/reports?partner_id=%01", "partner_id"),
        ("/v1/projects/p%00x/policy", "project_id"),
        ("/v1/projects/demo/units?price_from=1000000000000000000000000000000", "price_from"),
        ("/v1/projects/demo/units?floor_to=99999999999999999999", "floor_to"),
        ("/v1/projects/demo/policy?version=99999999999999999999", "version"),
    ],
)
def test_filters_and_path_values_at_the_edge_are_refused_by_name(
    any_api: Api, path: str, field: str
) -> None:
    assert_problem(any_api.client.get(path, headers=any_api.admin), 422, field)


@pytest.mark.parametrize(
    ("path", "field", "words"),
    [
        ("/v1/deals?stage=signed", "stage", DEAL_STAGES),
        ("/v1/projects/demo/units?orientation=sunny", "orientation", ORIENTATIONS),
    ],
)
def test_a_filter_word_outside_its_vocabulary_is_refused_with_the_allowed_words(
    any_api: Api, path: str, field: str, words: tuple[str, ...]
) -> None:
    """These filters took any string and answered an empty page: a typo (or a word of
    another list) looked like "no such deals"."""
    problem = assert_problem(any_api.client.get(path, headers=any_api.admin), 422, field)
    message = next(e["message"] for e in problem["errors"] if e["field"] == field)
    assert all(f"'{word}'" in message for word in words), message


def test_ownership_at_the_calendar_edge_is_refused(any_api: Api) -> None:
    api = any_api
    filed = api.client.post("/v1/reports", json=report(api), headers=api.admin)
    assert filed.status_code == 201, filed.text
    edge = {"at": "0001-01-01T00:00:00+14:00"}
    response = api.client.get(
        f"/v1/clients/{filed.json()['client_id']}/ownership", params=edge, headers=api.admin
    )
    assert_problem(response, 422, "at")
    # A buyer the caller cannot see (here: none) answers 404 whatever the query, so the
    # answer never tells a foreign id from a missing one (ADR 0043).
    missing = api.client.get(
        f"/v1/clients/{uuid.uuid4()}/ownership", params=edge, headers=api.admin
    )
    assert_problem(missing, 404)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"client_name": "   "}, "client_name"),
        ({"client_name": "李\x00雷"}, "client_name"),
        ({"client_name": "李\n雷"}, "client_name"),
        ({"agent_id": "a\x1fb"}, "agent_id"),
        ({"note": "bad \x00 note"}, "note"),
        ({"expected_visit_at": "2026-03-01T10:00:00"}, "expected_visit_at"),
        ({"expected_visit_at": "9999-12-31T23:59:59+00:00"}, "expected_visit_at"),
    ],
)
def test_bad_text_and_times_in_bodies_are_refused(
    any_api: Api, overrides: dict[str, Any], field: str
) -> None:
    api = any_api
    response = api.client.post("/v1/reports", json=report(api, **overrides), headers=api.admin)
    assert_problem(response, 422, field)
    listed = api.client.get("/v1/reports", params={"project_id": api.project}, headers=api.admin)
    assert listed.json()["items"] == []


def test_multi_line_free_text_is_still_accepted(any_api: Api) -> None:
    api = any_api
    response = api.client.post(
        "/v1/reports", json=report(api, note="第一行\n第二行"), headers=api.admin
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("with_key", [False, True])
def test_json_nested_a_thousand_deep_is_refused_before_parsing(
    any_api: Api, with_key: bool
) -> None:
    api = any_api
    headers = {**api.admin, "Content-Type": "application/json"}
    if with_key:
        headers["Idempotency-Key"] = "deep-1"
    body = '{"project_id": ' + nested(1000) + "}"
    assert_problem(api.client.post("/v1/reports", content=body, headers=headers), 422, "body")
    imported = api.client.post(
        f"/v1/projects/{api.project}/units:import",
        content='{"units": ' + nested(1000) + "}",
        headers=headers,
    )
    assert_problem(imported, 422, "body")


def test_the_depth_limit_counts_nesting_not_brackets(any_api: Api) -> None:
    from api.validation import MAX_JSON_DEPTH

    api = any_api
    headers = {**api.admin, "Content-Type": "application/json"}

    def codes(body: str) -> list[str]:
        answer = api.client.post("/v1/reports", content=body, headers=headers).json()
        return [e["code"] for e in answer.get("errors", [])]

    # One level is the body itself.
    deepest_allowed = '{"project_id": ' + nested(MAX_JSON_DEPTH - 1) + "}"
    assert "json_too_deep" not in codes(deepest_allowed)
    assert codes('{"project_id": ' + nested(MAX_JSON_DEPTH) + "}") == ["json_too_deep"]
    # Brackets inside strings nest nothing, however many.
    brackets = "[{" * MAX_JSON_DEPTH
    filed = api.client.post(
        "/v1/reports", json=report(api, note=brackets, client_name="李雷["), headers=headers
    )
    assert filed.status_code == 201, filed.text


def test_a_csv_field_over_the_csv_limit_is_refused_by_line(any_api: Api) -> None:
    api = any_api
    field = "x" * (csv.field_size_limit() + 10)
    header = "building,number,rooms,area,floor,orientation,list_price\n"
    body = header + "3栋,1201,3,89,12,south,1\n" + f'"{field}",1,3,89,12,south,1\n'
    response = api.client.post(
        f"/v1/projects/{api.project}/units:import",
        content=body.encode(),
        headers={**api.admin, "Content-Type": "text/csv"},
    )
    assert_problem(response, 422, "line 3")


def test_wrong_content_type_is_415_and_bodies_over_the_limit_are_413(any_api: Api) -> None:
    api = any_api
    as_text = api.client.post(
        "/v1/reports",
        content=json.dumps(report(api)),
        headers={**api.admin, "Content-Type": "text/plain"},
    )
    assert assert_problem(as_text, 415)["code"] == "unsupported_media_type"
    big = json.dumps(report(api, note="x" * 1_100_000))
    too_big = api.client.post(
        "/v1/reports", content=big, headers={**api.admin, "Content-Type": "application/json"}
    )
    assert assert_problem(too_big, 413)["code"] == "body_too_large"
    big_import = "building,number\n" + "3栋,1201\n" * 2_200_000  # 22 MB: over the 20 MB default
    refused = api.client.post(
        f"/v1/projects/{api.project}/units:import",
        content=big_import.encode(),
        headers={**api.admin, "Content-Type": "text/csv"},
    )
    assert_problem(refused, 413)
    still = api.client.post("/v1/reports", json=report(api), headers=api.admin)
    assert still.status_code == 201, still.text


def test_an_unexpected_error_answers_500_problem_and_closes_the_connection(
    tmp_path: Path,
) -> None:
    for api in make_api(tmp_path):

        def boom() -> None:
            raise RuntimeError("a bug")

        api.client.app.add_api_route("/boom", boom)  # type: ignore[attr-defined]
        response = api.client.get("/boom")
        problem = assert_problem(response, 500)
        assert problem["code"] == "internal_error"
        assert "a bug" not in response.text
        assert response.headers["connection"] == "close"
