"""People over HTTP: names, WeCom ids and webhooks on principals, the staff directory,
and names beside the ids people read."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import Api
from tests.support import unique

Headers = dict[str, str]


def register(api: Api, **body: Any) -> Any:
    return api.client.post("/v1/principals", json=body, headers=api.admin)


def directory(api: Api, headers: Headers, **params: Any) -> Any:
    response = api.client.get(
        "/v1/principals", params={"after": api.container.position(), **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_principal_carries_a_name_and_notification_addresses(api: Api) -> None:
    pid = unique("c")
    created = register(
        api,
        id=pid,
        role="consultant",
        project_ids=[api.project],
        display_name="王芳",
        wecom_user_id="WangFang",
        notify_webhook="https://hooks.example.com/yk?key=1",
    )
    assert created.status_code == 201, created.text
    assert created.json()["display_name"] == "王芳"

    shown = api.client.get(f"/v1/principals/{pid}", headers=api.admin).json()
    assert shown["display_name"] == "王芳"
    assert shown["wecom_user_id"] == "WangFang"
    assert shown["notify_webhook"] == "https://hooks.example.com/yk?key=1"

    changed = api.client.patch(
        f"/v1/principals/{pid}",
        json={"display_name": "王芳芳", "notify_webhook": None},
        headers=api.admin,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["display_name"] == "王芳芳"
    assert changed.json()["wecom_user_id"] == "WangFang"  # not sent, so unchanged
    assert changed.json()["notify_webhook"] is None


def test_a_principal_without_a_name_is_shown_by_id(api: Api) -> None:
    pid, _ = api.principal("consultant", [api.project])
    assert api.client.get(f"/v1/principals/{pid}", headers=api.admin).json()["display_name"] == pid
    (row,) = [r for r in directory(api, api.admin, project_id=api.project)["items"]]
    assert row["display_name"] == pid


def test_bad_profile_values_are_refused_field_by_field_and_change_nothing(api: Api) -> None:
    pid, _ = api.principal("consultant", [api.project])
    before = api.container.position()
    for field, value in [
        ("notify_webhook", "ftp://example.com/x"),
        ("notify_webhook", "javascript:alert(1)"),
        ("notify_webhook", "https://"),
        ("notify_webhook", "https://user:pw@example.com/x"),
        ("notify_webhook", "https://example.com:99999/x"),
        ("wecom_user_id", "王 芳"),
        ("display_name", "   "),
        ("display_name", "a\nb"),
        ("display_name", None),
    ]:
        response = api.client.patch(f"/v1/principals/{pid}", json={field: value}, headers=api.admin)
        assert response.status_code == 422, (field, value, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        fields = [e["field"] for e in response.json()["errors"]]
        assert any(field in f for f in fields), (field, value, fields)
    refused = register(
        api, id=unique("c"), role="consultant", project_ids=[api.project], notify_webhook="x"
    )
    assert refused.status_code == 422
    assert api.container.position() == before


def test_only_admins_change_principals(api: Api) -> None:
    pid, headers = api.principal("consultant", [api.project])
    _, manager = api.principal("manager", [api.project])
    for who in (headers, manager):
        response = api.client.patch(
            f"/v1/principals/{pid}", json={"display_name": "我自己"}, headers=who
        )
        assert response.status_code == 403


def test_the_directory_is_scoped_to_the_managers_projects_and_filters(api: Api) -> None:
    other_project = unique("proj")
    team = unique("team")
    register(
        api,
        id=(sup := unique("s")),
        role="supervisor",
        project_ids=[api.project],
        team_id=team,
        display_name="张主管",
    )
    register(
        api,
        id=(mine := unique("c")),
        role="consultant",
        project_ids=[api.project],
        team_id=team,
        display_name="李顾问",
    )
    register(api, id=(theirs := unique("c")), role="consultant", project_ids=[other_project])
    manager_id, manager = api.principal("manager", [api.project])

    seen = {r["id"]: r for r in directory(api, manager)["items"]}
    assert set(seen) == {sup, mine, manager_id}
    assert seen[mine]["display_name"] == "李顾问"
    assert seen[mine]["notify_webhook"] is None

    consultants = directory(api, manager, role="consultant")["items"]
    assert [r["id"] for r in consultants] == [mine]
    assert {r["id"] for r in directory(api, manager, team_id=team)["items"]} == {sup, mine}
    # A project the manager is not granted yields nobody, not the other project's staff.
    assert directory(api, manager, project_id=other_project)["items"] == []

    everyone = {r["id"] for r in directory(api, api.admin)["items"]}
    assert {sup, mine, theirs, manager_id} <= everyone

    api.client.delete(f"/v1/principals/{mine}", headers=api.admin)
    active = {r["id"] for r in directory(api, manager, revoked=False)["items"]}
    assert mine not in active and sup in active


def test_the_directory_pages_by_id(api: Api) -> None:
    _, manager = api.principal("manager", [api.project])
    for _ in range(4):
        api.principal("consultant", [api.project])
    first = directory(api, manager, limit=2)
    second = directory(api, manager, limit=2, cursor=first["next_cursor"])
    third = directory(api, manager, limit=2, cursor=second["next_cursor"])
    ids = [r["id"] for page in (first, second, third) for r in page["items"]]
    assert ids == sorted(ids) and len(ids) == 5 and third["next_cursor"] is None


def test_consultants_and_supervisors_may_not_list_staff(api: Api) -> None:
    for role in ("consultant", "supervisor"):
        _, headers = api.principal(role, [api.project])
        assert api.client.get("/v1/principals", headers=headers).status_code == 403


def test_names_stand_beside_consultant_ids_in_tasks_lists_and_boards(api: Api) -> None:
    from tests.http.test_aftercare_api import set_policy, visit

    set_policy(api, protection="P5D", protection_extension="P1D")  # on the board: < 7 days
    pid = unique("c")
    created = register(
        api, id=pid, role="consultant", project_ids=[api.project], display_name="王芳"
    )
    headers = api.auth(created.json()["key"])
    _, manager = api.principal("manager", [api.project])
    visit(api, pid, headers)
    after = {"after": api.container.position()}

    for path in ("/v1/tasks", "/v1/clients"):
        (row,) = api.client.get(path, params=after, headers=manager).json()["items"]
        assert row["consultant_id"] == pid and row["consultant_name"] == "王芳", path
    (board,) = api.client.get("/v1/views/protection-board", params=after, headers=manager).json()[
        "items"
    ]
    assert board["consultant_name"] == "王芳"
    csv = api.client.get("/v1/tasks", params={**after, "format": "csv"}, headers=manager)
    assert "consultant_name" in csv.text.splitlines()[0] and "王芳" in csv.text


def test_the_rules_tasks_name_the_consultant_too(api: Api) -> None:
    """A supervisor reading the escalations (/v1/rule-tasks) sees who, not only an id."""
    from tests.http.test_aftercare_api import visit

    pid = unique("c")
    created = register(
        api, id=pid, role="consultant", project_ids=[api.project], display_name="王芳"
    )
    visit(api, pid, api.auth(created.json()["key"]))
    _, manager = api.principal("manager", [api.project])
    # The deadline processor finds what is due in the views: let them reach the visit.
    seen = api.client.get("/v1/tasks", params={"after": api.container.position()}, headers=manager)
    assert len(seen.json()["items"]) == 1, seen.text
    api.clock.advance(days=2, minutes=1)  # the first follow-up, due after a day, escalates
    api.container.deadlines_step()
    after = {"after": api.container.position(), "kind": "follow_up_escalated"}
    (task,) = api.client.get("/v1/rule-tasks", params=after, headers=manager).json()["items"]
    assert (task["consultant_id"], task["consultant_name"]) == (pid, "王芳")
    csv = api.client.get("/v1/rule-tasks", params={**after, "format": "csv"}, headers=manager)
    assert "consultant_name" in csv.text.splitlines()[0] and "王芳" in csv.text
