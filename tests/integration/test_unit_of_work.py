"""The unit of work stores the caller's response with a repeatable command, and a repeat
answers exactly that response without deciding again."""

from __future__ import annotations

import pytest

from api import bodies
from api.bodies import answer
from domain.services.uow import Context, Idempotency, Response
from domain.values import Actor
from tests.support import FakeClock, unique
from yingke.bootstrap import Container

MANAGER = Actor("manager-1", "manager")


def test_a_repeat_answers_the_stored_response_with_its_status(
    app: Container, clock: FakeClock, project_id: str
) -> None:
    key = Idempotency(unique("idem"), "fingerprint")
    respond = answer(200, bodies.settings)

    def send() -> tuple[Response | None, bool]:
        context = Context(MANAGER, unique("req"), key, respond)
        done = app.policies.set_policy(context, project_id, {"judge_rule": "visit_first"})
        return done.response, done.replayed

    decided_at = clock.now
    first, first_replayed = send()
    position = app.position()
    clock.advance(minutes=5)
    again, again_replayed = send()

    assert first is not None and first.status == 200
    assert first.body["version"] == 1
    assert first.body["effective_from"] == decided_at.isoformat()
    assert (first_replayed, again_replayed) == (False, True)
    assert again == Response(200, first.body)
    assert app.position() == position
    assert app.policies.policy_for(project_id).version == 1


def test_a_repeatable_command_without_a_way_to_answer_is_refused_and_writes_nothing(
    app: Container, project_id: str
) -> None:
    position = app.position()
    context = Context(MANAGER, unique("req"), Idempotency(unique("idem"), "fingerprint"))

    with pytest.raises(ValueError, match="respond"):
        app.policies.set_policy(context, project_id, {"judge_rule": "visit_first"})

    assert app.position() == position
