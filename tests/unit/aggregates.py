"""Drive the aggregates the way the application does, without any store or vault.

Each helper takes the decision with the pure rules and records it on the aggregate, so
the unit tests read as given (earlier facts) / when (one command) / then (new events).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate

from domain.attribution import VisitDecision
from domain.client import Client
from domain.masked_pool import MaskedReportPool
from domain.policy import Policy
from domain.reports import ReportState
from domain.visits import decide_and_record_visit, file_report_on
from tests.support import START

TRACE: dict[str, Any] = {
    "actor": {"id": "agent-1", "role": "channel_agent"},
    "correlation_id": "req-unit",
}
PATTERN = "138****5678"


def new_client(at: datetime = START, client_id: uuid.UUID | None = None) -> Client:
    return Client.register(
        client_id or uuid.uuid4(),
        project_id="p1",
        phone_masked=PATTERN,
        phone_hash="hash-of-the-number",
        pii="sealed",
        at=at,
        trace=TRACE,
    )


def new_pool(at: datetime = START) -> MaskedReportPool:
    return MaskedReportPool.open(
        uuid.uuid4(), project_id="p1", phone_masked=PATTERN, at=at, trace=TRACE
    )


def file_report(
    client: Client, partner_id: str, at: datetime, policy: Policy = Policy()
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


def file_masked_report(
    pool: MaskedReportPool, partner_id: str, at: datetime, policy: Policy = Policy()
) -> ReportState:
    return file_report_on(
        pool,
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
    partner_id: str | None = None,
    consultant_id: str = "cons-1",
    policy: Policy = Policy(),
    pool: MaskedReportPool | None = None,
) -> VisitDecision:
    decision, _ = decide_and_record_visit(
        client,
        pool,
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


def new_events(aggregate: Aggregate) -> list[Any]:
    """The events recorded since the last call: the 'then' of a given/when/then."""
    return list(aggregate.collect_events())


def types(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


# The facts of reporting and attribution. Later features add bookkeeping events to the
# same stream (follow-up schedules, protection extensions); these tests look past them.
ATTRIBUTION = {
    "ClientRegistered",
    "ReportFiled",
    "ReportAccepted",
    "ReportRejected",
    "ClientVisited",
    "MaskedReportMatched",
    "ReportConfirmed",
    "ReportClosed",
    "OwnershipAwarded",
    "PersonalDataErased",
    "PoolOpened",
    "MaskedReportConsumed",
}


def attribution_events(aggregate: Aggregate) -> list[Any]:
    """The new events of reporting and attribution only."""
    return [e for e in aggregate.collect_events() if type(e).__name__ in ATTRIBUTION]


def replay(events: list[Any]) -> Any:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
