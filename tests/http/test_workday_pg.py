"""The staff directory, the inbox, the pool and my day on PostgreSQL: their SQL is new
(subqueries over grants, grouped counts, time bounds on TIMESTAMPTZ), so the same
scenarios run on both backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.http import test_people_api, test_workday_api
from tests.http.conftest import Api
from tests.http.test_postgres_api import own_database, pg_api

pytestmark = pytest.mark.postgres
__all__ = ["own_database"]

SCENARIOS: list[Callable[[Api], None]] = [
    test_people_api.test_the_directory_is_scoped_to_the_managers_projects_and_filters,
    test_people_api.test_the_directory_pages_by_id,
    test_workday_api.test_a_supervisor_decides_a_loss_request_from_the_inbox,
    test_workday_api.test_a_manager_sees_open_disputes_with_the_link_to_rule,
    test_workday_api.test_a_consultant_browses_the_pool_and_claims_from_it,
    test_workday_api.test_my_day_shows_due_follow_ups_with_the_buyers_name_to_the_owner,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_on_postgresql(tmp_path: Path, own_database: str, scenario: Callable[[Api], None]) -> None:
    for api in pg_api(tmp_path, own_database):
        scenario(api)
