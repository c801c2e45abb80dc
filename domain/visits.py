"""Filing a report (报备) and registering a visit (到访): gather the claims, decide, record.

These two functions are the whole decision, used by the application service, the unit
test helpers and the benchmark's log generator alike, so a generated log is the log the
application would have written. Loading and saving the streams, sealing personal data
and choosing ids stay with the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from domain.attribution import VisitDecision, decide_filing, decide_masked_filing, decide_visit
from domain.client import Client
from domain.masked_pool import MaskedReportPool
from domain.policy import Policy
from domain.reports import ReportState


def file_report_on(
    stream: Client | MaskedReportPool,
    *,
    report_id: str,
    partner_id: str,
    agent_id: str,
    expected_visit_at: datetime | None,
    pii: str,
    policy: Policy,
    at: datetime,
    trace: dict[str, Any],
) -> ReportState:
    """Judge a report against the stream's valid claims and record it there.

    A full number is filed on the buyer's stream; a masked one (前三后四) on the pool of
    its pattern, where only other masked reports can collide with it.
    """
    if isinstance(stream, MaskedReportPool):
        decision = decide_masked_filing(policy, at, partner_id, stream.valid_claims(at))
    else:
        decision = decide_filing(
            policy,
            at,
            partner_id,
            stream.owner_view(),
            stream.valid_claims(at),
            stream.last_visit_at(),
        )
    return stream.record_report(
        report_id=report_id,
        partner_id=partner_id,
        agent_id=agent_id,
        masked=isinstance(stream, MaskedReportPool),
        phone_masked=stream.phone_masked,
        expected_visit_at=expected_visit_at,
        pii=pii,
        decision=decision,
        valid_until=at + policy.report_validity_delta,
        policy_version=policy.version,
        at=at,
        trace=trace,
    )


def decide_and_record_visit(
    client: Client,
    pool: MaskedReportPool | None,
    policy: Policy,
    *,
    visit_id: str,
    consultant_id: str,
    partner_id: str | None,
    agent_id: str | None,
    pii: str,
    reseal: Callable[[ReportState], str],
    at: datetime,
    trace: dict[str, Any],
) -> tuple[VisitDecision, list[Client | MaskedReportPool]]:
    """Decide who the visiting buyer belongs to and record it; return what to save.

    The claims are the buyer's own valid reports and the valid masked reports of the
    buyer's pattern, less those this buyer already outranked (``passed_over``). A masked
    winner is consumed from the pool and its facts move onto the buyer's stream, its
    personal data re-sealed under the buyer's key by ``reseal``.
    """
    pooled = pool.valid_claims(at) if pool is not None else []
    fresh = [c for c in pooled if c.report_id not in client.passed_over]
    # A masked report could not know its buyer when filed: the recent-visit rule that
    # voids a full-number report at filing judges it here, against this buyer's visits.
    void = [c for c in fresh if _seen_lately(client, c.filed_at, policy)]
    claims = client.valid_claims(at) + [c for c in fresh if c not in void]
    decision = decide_visit(policy, at, client.owner_view(), claims, partner_id)
    if void and decision.kind != "protected":
        decision = replace(
            decision, losers=decision.losers + tuple((c, "recent_visit") for c in void)
        )
    touched: list[Client | MaskedReportPool] = [client]
    masked_winner = None
    if decision.winner is not None and decision.winner.masked:
        assert pool is not None
        report = pool.report(decision.winner.report_id)
        assert report.valid_until is not None
        masked_winner = {
            "report_id": report.report_id,
            "pool_id": pool.id,
            "partner_id": report.partner_id,
            "agent_id": report.agent_id,
            "filed_at": report.filed_at,
            "valid_until": report.valid_until,
            "expected_visit_at": report.expected_visit_at,
            "pii": reseal(report),
            "policy_version": report.policy_version,
        }
        pool.consume(report.report_id, client.id, visit_id, at, trace)
        touched.append(pool)
    client.record_visit(
        visit_id=visit_id,
        consultant_id=consultant_id,
        partner_id=partner_id,
        agent_id=agent_id,
        pii=pii,
        decision=decision,
        masked_winner=masked_winner,
        policy=policy,
        at=at,
        trace=trace,
    )
    return decision, touched


def _seen_lately(client: Client, moment: datetime, policy: Policy) -> bool:
    """Was the buyer at the office within ``recent_visit_window`` before ``moment``?"""
    before = [v.at for v in client.visits if v.at <= moment]
    return bool(before) and moment - max(before) < policy.delta("recent_visit_window")
