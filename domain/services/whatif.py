"""The what-if replay over a project's recorded log (ADR 0059): read, replay, summarise.

Reads the notification log once, keeps the streams of the project (its buyers, its masked
pools, its deals, its two policy streams) and replays each buyer with activity in the
window through ``domain.whatif``. Read-only: it never saves an aggregate.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.application import Application

from domain.commission import CommissionPolicy, CommissionRules
from domain.deal import Deal
from domain.errors import InvalidInput
from domain.policy import ProjectPolicy, validate_settings
from domain.ports import Clock
from domain.whatif import BuyerOutcome, DealFacts, Event, PolicyTimeline, replay_buyer

Progress = Callable[[int, int], None]  # (buyers done, buyers in the window)
READ_BATCH = 10_000


@dataclass
class ProjectLog:
    """A project's streams as recorded, each in stream order."""

    clients: dict[uuid.UUID, list[Event]]
    pools: dict[str, list[Event]]  # by pattern (前三后四)
    deals: dict[uuid.UUID, list[Event]]  # by client
    policy: ProjectPolicy | None
    commission: CommissionPolicy | None
    events: int  # events read from the log, all projects


def check_window(since: datetime, until: datetime) -> None:
    for name, value in (("from", since), ("to", until)):
        if value.tzinfo is None:
            raise InvalidInput(name, "must carry a UTC offset (e.g. 2026-01-01T00:00:00Z)")
    if until <= since:
        raise InvalidInput("to", "must be after from")


def check_overrides(overrides: dict[str, Any]) -> None:
    """Validated exactly as ``PUT …/policy`` validates settings; fields name the override."""
    try:
        validate_settings(overrides)
    except InvalidInput as bad:
        raise InvalidInput(f"policy.overrides.{bad.field}", str(bad), code=bad.code) from None


def _rebuild(events: list[Event]) -> Any:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class WhatIf:
    def __init__(self, store: Application, clock: Clock | None = None) -> None:  # type: ignore[type-arg]
        self.store = store
        # A window reaching past now is replayed only up to now: the future has no
        # recorded facts, and a deadline still ahead in the live record has not moved.
        self.clock = clock

    def notifications(self, read: Callable[[int], None] | None = None) -> Iterator[Event]:
        """Every event of the log in log order (the whole log: one sequential read);
        ``read`` hears the count so far after each batch."""
        recorder, to_domain = self.store.recorder, self.store.mapper.to_domain_event
        position: int | None = None
        count = 0
        while True:
            batch = recorder.select_notifications(  # type: ignore[attr-defined]
                start=position, limit=READ_BATCH, inclusive_of_start=position is None
            )
            if not batch:
                return
            for notification in batch:
                yield to_domain(notification)
            position = batch[-1].id
            count += len(batch)
            if read is not None:
                read(count)

    def read(self, project_id: str, read: Callable[[int], None] | None = None) -> ProjectLog:
        return collect(self.notifications(read), project_id)

    def run(
        self,
        project_id: str,
        since: datetime,
        until: datetime,
        overrides: dict[str, Any],
        progress: Progress | None = None,
        log: ProjectLog | None = None,
    ) -> dict[str, Any]:
        check_window(since, until)
        check_overrides(overrides)
        if self.clock is not None:
            until = max(since, min(until, self.clock()))
        # While the log is read, a job still beats (0 of 0 buyers) so it is seen alive.
        log = log or self.read(project_id, (lambda _: progress(0, 0)) if progress else None)
        versions = log.policy.versions if log.policy is not None else []
        try:
            timeline = PolicyTimeline(list(versions), overrides, since)
        except InvalidInput as bad:
            raise InvalidInput(f"policy.overrides.{bad.field}", str(bad), code=bad.code) from None
        active = [
            cid
            for cid, events in log.clients.items()
            if any(since <= e.timestamp < until for e in events)
        ]
        outcomes: list[BuyerOutcome] = []
        replayed = 0
        for done, cid in enumerate(active, 1):
            events = log.clients[cid]
            deals = _deals(log, cid, until)
            outcome = replay_buyer(
                events, timeline=timeline, window=(since, until), pools=log.pools, deals=deals
            )
            if outcome is not None:
                outcomes.append(outcome)
                replayed += outcome.facts
            if progress is not None and (done % 200 == 0 or done == len(active)):
                progress(done, len(active))
        if progress is not None and not active:
            progress(0, 0)
        return summarise(project_id, since, until, overrides, outcomes, replayed, log.events)


def collect(log: Iterable[Event], project_id: str) -> ProjectLog:
    """The project's streams out of ``log`` (events in log order, any projects)."""
    policy_id = ProjectPolicy.create_id(project_id)
    commission_id = CommissionPolicy.create_id(project_id)
    streams: dict[uuid.UUID, list[Event]] = defaultdict(list)
    ours: dict[uuid.UUID, str] = {}  # stream → kind, for the project's streams
    count = 0
    for event in log:
        count += 1
        oid = event.originator_id
        kind = ours.get(oid)
        if kind is None:
            if event.originator_version != 1:
                continue  # a stream of another project, or not one we replay
            kind = _kind(event, project_id, policy_id, commission_id)
            if kind is None:
                ours[oid] = ""
                continue
            ours[oid] = kind
        if kind:
            streams[oid].append(event)
    clients, pools, deals = {}, {}, defaultdict(list)
    for oid, events in streams.items():
        kind = ours[oid]
        if kind == "client":
            clients[oid] = events
        elif kind == "pool":
            pools[getattr(events[0], "phone_masked")] = events  # noqa: B009
        elif kind == "deal":
            deals[getattr(events[0], "client_id")].append(events)  # noqa: B009
    return ProjectLog(
        clients,
        pools,
        {cid: [e for stream in group for e in stream] for cid, group in deals.items()},
        _rebuild(streams[policy_id]) if policy_id in streams else None,
        _rebuild(streams[commission_id]) if commission_id in streams else None,
        count,
    )


def _kind(
    event: Event, project_id: str, policy_id: uuid.UUID, commission_id: uuid.UUID
) -> str | None:
    name = type(event).__name__
    if event.originator_id in (policy_id, commission_id):
        return "settings"
    if getattr(event, "project_id", None) != project_id:
        return None
    return {"ClientRegistered": "client", "PoolOpened": "pool", "DealOpened": "deal"}.get(name)


def _deals(log: ProjectLog, client_id: uuid.UUID, until: datetime) -> list[DealFacts]:
    events = log.deals.get(client_id, [])
    by_deal: dict[uuid.UUID, list[Event]] = defaultdict(list)
    for event in events:
        if event.timestamp < until:
            by_deal[event.originator_id].append(event)
    facts = []
    for deal_id, stream in by_deal.items():
        deal: Deal = _rebuild(stream)
        version = deal.commission_policy_version
        rules = (
            log.commission.at_version(version)
            if log.commission is not None and version
            else CommissionRules()
        )
        facts.append(DealFacts(str(deal_id), deal.payees(), deal.progress(), rules))
    return facts


def summarise(
    project_id: str,
    since: datetime,
    until: datetime,
    overrides: dict[str, Any],
    outcomes: list[BuyerOutcome],
    replayed: int,
    read: int,
) -> dict[str, Any]:
    changes = [c.as_row() for o in outcomes for c in o.changes]
    counts: dict[str, int] = defaultdict(int)
    for change in changes:
        counts[change["kind"]] += 1
    released_earlier = sorted(
        {
            c["client_id"]
            for c in changes
            if c["kind"] == "release" and c["detail"].startswith("earlier")
        }
    )
    money: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for outcome in outcomes:
        for key, (live, alt) in outcome.commission.items():
            money[key][0] += live
            money[key][1] += alt
    commission = [
        {"payee_kind": k, "payee_id": p, "live": a, "alternative": b, "delta": b - a}
        for (k, p), (a, b) in sorted(money.items())
        if a != b
    ]
    return {
        "project_id": project_id,
        "from": since.isoformat(),
        "to": until.isoformat(),
        "overrides": overrides,
        "buyers": len(outcomes),
        "events_replayed": replayed,
        "events_read": read,
        "buyers_changed": len({c["client_id"] for c in changes}),
        "counts": dict(sorted(counts.items())),
        "released_earlier": released_earlier,
        "commission": commission,
        "changes": changes,
    }
