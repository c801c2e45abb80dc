"""Copies of principals and policies kept from the log: another process's change is
seen by the very next read, never an old copy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.principal import new_key
from tests.support import ctx
from yingke.bootstrap import Container, build
from yingke.settings import Settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_processes(pg_settings: Settings) -> Iterator[tuple[Container, Container]]:
    first, second = build(pg_settings), build(pg_settings)
    yield first, second
    first.close()
    second.close()


def test_a_key_revoked_elsewhere_fails_on_the_next_request(
    two_processes: tuple[Container, Container],
) -> None:
    here, elsewhere = two_processes
    key = new_key("agent-watched")
    here.principals.register_principal(ctx(), "agent-watched", "channel_agent", "p-1", [], key)
    # The other process has not seen this principal yet: it loads it, then keeps a copy.
    for _ in range(3):
        assert elsewhere.principals.authenticate(key) is not None
    assert elsewhere.principals.watched.hits >= 2
    here.principals.revoke_principal(ctx(), "agent-watched", "left the agency")
    assert elsewhere.principals.authenticate(key) is None


def test_a_policy_changed_elsewhere_is_read_at_once(
    two_processes: tuple[Container, Container], project_id: str
) -> None:
    here, elsewhere = two_processes
    assert elsewhere.policies.policy_for(project_id).version == 0
    here.policies.set_policy(ctx(), project_id, {"protection": "P7D"})
    assert elsewhere.policies.policy_for(project_id).version == 1
    here.policies.set_policy(ctx(), project_id, {"protection": "P9D"})
    assert elsewhere.policies.policy_for(project_id).version == 2
