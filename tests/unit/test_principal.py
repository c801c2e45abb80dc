from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.principal import (
    Principal,
    key_digest,
    new_key,
    principal_id_from_key,
    principal_uuid,
)
from tests.support import START
from tests.unit.aggregates import TRACE, new_events, types


def register(role: str = "consultant", **kwargs: object) -> tuple[Principal, str]:
    key = new_key("cons-1")
    grant: dict[str, object] = {"partner_id": None, "project_ids": ["p1"], **kwargs}
    principal = Principal.register(
        "cons-1",
        role,
        grant["partner_id"],  # type: ignore[arg-type]
        grant["project_ids"],  # type: ignore[arg-type]
        key,
        START,
        TRACE,
    )
    return principal, key


def test_a_registered_principal_is_known_by_its_key_which_is_stored_only_hashed() -> None:
    principal, key = register()

    events = new_events(principal)
    assert types(events) == ["PrincipalRegistered"]
    assert principal.id == principal_uuid("cons-1")
    assert principal.accepts(key)
    assert not principal.accepts(new_key("cons-1"))
    assert events[0].key_digest == key_digest(key)
    assert key not in repr(vars(events[0]))


def test_a_revoked_principal_is_refused_at_once_and_revoked_only_once() -> None:
    principal, key = register()
    new_events(principal)

    principal.revoke("left the company", START, TRACE)
    principal.revoke("again", START, TRACE)

    assert types(new_events(principal)) == ["PrincipalRevoked"]
    assert not principal.accepts(key)


def test_a_key_names_its_principal_and_garbage_names_nobody() -> None:
    assert principal_id_from_key(new_key("agent:7")) == "agent:7"
    assert principal_id_from_key("not-a-key") is None
    assert principal_id_from_key("yk1.__8.x") is None  # not UTF-8
    assert principal_id_from_key("yk2.Y29ucy0x.abc") is None


def test_a_consultant_covers_only_the_projects_it_was_granted() -> None:
    principal, _ = register(project_ids=["p2", "p1", "p1"])

    assert principal.project_ids == ["p1", "p2"]
    assert principal.covers_project("p1")
    assert not principal.covers_project("p3")


@pytest.mark.parametrize(
    ("role", "grant", "field"),
    [
        ("wizard", {}, "role"),
        ("channel_agent", {"project_ids": []}, "partner_id"),
        ("consultant", {"partner_id": "A"}, "partner_id"),
        ("consultant", {"project_ids": []}, "project_ids"),
        ("manager", {"project_ids": ["bad id"]}, "project_ids"),
    ],
)
def test_an_inconsistent_grant_is_refused_naming_the_field(
    role: str, grant: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        register(role, **grant)

    assert caught.value.field == field


def test_a_channel_agent_is_bound_to_its_partner() -> None:
    principal, _ = register("channel_agent", partner_id="partner-A", project_ids=[])

    assert principal.partner_id == "partner-A"
    assert principal.covers_project("any-project")
