"""Drive a Client through its life after the visit, without any store or vault.

The helpers take decisions with the pure rules and record them on the aggregate the way
the application does, so the lifecycle tests read as given / when / then.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate

from domain.attribution import VisitDecision
from domain.client import Client
from domain.policy import Policy
from domain.reports import ReportState
from domain.values import Actor
from domain.visits import decide_and_record_visit, file_report_on
from tests.support import START

TRACE: dict[str, Any] = {
    "actor": {"id": "cons-1", "role": "consultant"},
    "correlation_id": "req-lifecycle",
}
OWNER = Actor("cons-1", "consultant")
OTHER = Actor("cons-2", "consultant")
SUPERVISOR = Actor("sup-1", "supervisor")
MANAGER = Actor("mgr-1", "manager")
AUDITOR = Actor("aud-1", "auditor")
AGENT = Actor("agent-a", "channel_agent")

# Short, distinct durations so that every rule is visible in a test's arithmetic.
POLICY = Policy(
    version=4,
    protection="P10D",
    protection_extension="P3D",
    protection_max="P20D",
    inactivity_release="P7D",
    first_follow_up="PT24H",
)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def new_client(at: datetime = START) -> Client:
    return Client.register(
        uuid.uuid4(),
        project_id="p1",
        phone_masked="138****5678",
        phone_hash="hash-of-the-number",
        pii="sealed",
        at=at,
        trace=TRACE,
    )


def file_report(
    client: Client, partner_id: str, at: datetime, policy: Policy = POLICY
) -> ReportState:
    return file_report_on(
        client,
        report_id=str(uuid.uuid4()),
        partner_id=partner_id,
        agent_id=f"agent-{partner_id}",
        expected_visit_at=None,
        pii="sealed",
        policy=policy,
        at=at,
        trace=TRACE,
    )


def visit(
    client: Client,
    at: datetime,
    *,
    consultant_id: str = OWNER.id,
    partner_id: str | None = None,
    policy: Policy = POLICY,
) -> VisitDecision:
    decision, _ = decide_and_record_visit(
        client,
        None,
        policy,
        visit_id=str(uuid.uuid4()),
        consultant_id=consultant_id,
        partner_id=partner_id,
        agent_id=f"agent-{partner_id}" if partner_id else None,
        pii="sealed",
        reseal=lambda report: "resealed",
        at=at,
        trace=TRACE,
    )
    return decision


def owned_client(
    at: datetime = START,
    policy: Policy = POLICY,
    consultant_id: str = OWNER.id,
    partner_id: str | None = None,
) -> Client:
    """Given: a buyer owned by ``consultant_id`` since ``at`` (events already collected)."""
    client = new_client(at)
    if partner_id is not None:
        file_report(client, partner_id, at, policy)
    visit(client, at, consultant_id=consultant_id, partner_id=partner_id, policy=policy)
    new_events(client)
    return client


def follow_up(
    client: Client,
    at: datetime,
    *,
    effective: bool = True,
    actor: Actor = OWNER,
    policy: Policy = POLICY,
    next_contact_at: datetime | None = None,
    grade: str | None = None,
    method: str = "call",
) -> None:
    client.log_follow_up(
        actor=actor,
        follow_up_id=str(uuid.uuid4()),
        method=method,
        effective=effective,
        next_contact_at=next_contact_at,
        grade=grade,
        pii="sealed-summary",
        policy=policy,
        at=at,
        trace={"actor": actor.as_dict(), "correlation_id": "req-follow-up"},
    )


def release_by_loss(client: Client, at: datetime, policy: Policy = POLICY) -> None:
    """Given: the owner gave the buyer up and a supervisor agreed: the buyer is in the pool."""
    request_id = str(uuid.uuid4())
    client.request_loss(OWNER, request_id, "price", "sealed-note", at, TRACE)
    client.approve_loss(request_id, "ok", policy, at, TRACE)
    new_events(client)


def new_events(aggregate: Aggregate) -> list[Any]:
    """The events recorded since the last call: the 'then' of a given/when/then."""
    return list(aggregate.collect_events())


def types(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def of_type(events: list[Any], name: str) -> Any:
    found = [e for e in events if type(e).__name__ == name]
    assert len(found) == 1, f"expected one {name} in {types(events)}"
    return found[0]


def replay(events: list[Any]) -> Any:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate
