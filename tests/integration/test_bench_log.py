"""The benchmark's log generator writes the log the application writes.

``bench.rebuild_views`` drives the aggregates in memory to write a million events fast;
its numbers only mean something if those are the events the application would have
written. Both now take the filing and visit decisions from ``domain.visits``; this test
plays one scenario through both (same clock, same keyer) and compares the streams event
by event. Ids chosen at random (report and visit ids) are compared by order of first
appearance; sealed personal data and request traces legitimately differ and are left out.
"""

from __future__ import annotations

import random
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.rebuild_views import Buyer, LogWriter, Office
from domain.values import Actor, PhoneKeyer
from tests.support import FakeClock, ctx, file_report, register_consultant, register_visit
from yingke.bootstrap import Container, build
from yingke.settings import load_settings

NUMBER = "13812345678"
MASKED = "138****5678"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Who asked and under which request: the bench makes up its own traces.
_TRACE = {"actor", "correlation_id"}

# A protection of two hours, so that a second visit comes after it while the reports
# of the first are still valid (three days).
POLICY = {"protection": "PT2H", "protection_extension": "PT1H"}
# (minutes from the start, action, partner, masked). Masked reports collide only with
# each other; the first visit picks the earliest valid claim and passes over the other
# masked one, which must stay passed over at the second visit, once protection is over.
SCENARIO: list[tuple[int, str, str | None, bool]] = [
    (0, "report", "pa", True),
    (5, "report", "pb", True),
    (6, "report", "pb", True),  # duplicate in the pool
    (10, "report", "pc", False),
    (11, "report", "pd", False),  # protected by pc's report
    (60, "visit", None, False),
    (90, "report", "pe", True),  # a masked report while the buyer is protected
    (95, "report", "pd", False),  # protected by the owner
    (60 * 5, "visit", None, False),  # protection over; pb's report was passed over
    (60 * 6, "report", "pa", True),
    (60 * 24 * 5, "visit", "pe", False),  # every report has lapsed by now
]
# The buyer's streams: the pool, the buyer, the report locators (not principals, policy).
_KEPT = ("domain.client:", "domain.masked_pool:", "domain.locator:")


def normalise(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, uuid.UUID):
        value = str(value)
    if isinstance(value, str) and _UUID.match(value):
        return ids.setdefault(value, f"id#{len(ids)}")
    if isinstance(value, dict):
        return {k: normalise(v, ids) for k, v in value.items() if k not in ("pii", *_TRACE)}
    if isinstance(value, list | tuple | set):
        items = [normalise(v, ids) for v in value]
        return sorted(items, key=repr) if isinstance(value, set) else items
    return value


def the_log(container: Container) -> list[tuple[str, dict[str, Any]]]:
    """Buyer-side events in log order, Principal streams left out."""
    store = container.store
    ids: dict[str, str] = {}
    out = []
    for n in store.recorder.select_notifications(start=1, limit=10_000):
        event = store.mapper.to_domain_event(n)
        if not n.topic.startswith(_KEPT):
            continue
        out.append((n.topic, normalise(vars(event), ids)))
    return out


def test_the_generator_writes_the_events_the_application_writes(
    tmp_path: Path, clock: FakeClock, project_id: str
) -> None:
    app = build(load_settings({"YINGKE_DATA_DIR": str(tmp_path / "app")}), clock=clock)
    bench = build(load_settings({"YINGKE_DATA_DIR": str(tmp_path / "bench")}), clock=clock)
    try:
        written, generated = play(app, bench, clock, project_id)
    finally:
        app.close()
        bench.close()

    assert [topic for topic, _ in generated] == [topic for topic, _ in written]
    for (topic, ours), (_, theirs) in zip(written, generated, strict=True):
        assert theirs == ours, topic


def play(
    app: Container, bench: Container, clock: FakeClock, project_id: str
) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, dict[str, Any]]]]:
    """The scenario through the application's services, and through the generator."""
    consultant = register_consultant(app, project_id)
    app.policies.set_policy(ctx(), project_id, POLICY)
    writer = LogWriter(bench)
    office = Office(
        [project_id],
        {project_id: [consultant]},
        ["pa", "pb", "pc", "pd", "pe"],
        policy=app.policies.policy_for(project_id),
        keyer=PhoneKeyer(app.settings.secret),
    )
    buyer = Buyer(office, random.Random(7), writer, clock.now)
    buyer.project, buyer.number = project_id, NUMBER
    start = clock.now

    for minutes, action, partner, masked in SCENARIO:
        buyer.now = clock.now = start + timedelta(minutes=minutes)
        if action == "report":
            assert partner is not None
            file_report(app, project_id, partner, MASKED if masked else NUMBER)
            buyer.report(partner, masked=masked)
        else:
            who = ctx(Actor(consultant, "consultant"))
            register_visit(app, project_id, NUMBER, consultant, partner, context=who)
            buyer.visit(consultant, partner)
    writer.flush()
    return the_log(app), the_log(bench)
