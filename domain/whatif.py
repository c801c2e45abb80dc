"""What if the rules had been different? Replaying a buyer's recorded facts (ADR 0059).

Each recorded fact of a buyer (a report filed, a visit, a follow-up, a grade change, a
loss or a claim, a deal milestone, a dispute and its ruling) is re-executed, in order, on
a FRESH Client aggregate through the same domain functions the application uses
(``domain.visits``, the aggregate's command methods), with the policy in force at that
instant and the overrides applied on top from the window's start. The recorded stream is
applied, event by event, to a second aggregate in lockstep, so at every instant the
replay knows both worlds and compares the decisions they took. Nothing here reads or
writes a store: ``domain.services.whatif`` feeds it events and keeps its answers.

Deadlines (report validity, protection, inactivity) are the deadline processor's: a
deadline the live record shows firing fires in the alternative world with the same
lateness after its own due time; a deadline the alternative world brings *earlier* than
the live one fires punctually at its due time; one that is due no earlier than in the
live record and never fired there does not fire either (the live processor had not got
to it). With no overrides both worlds are the same, so nothing fires that did not fire.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.client import Client
from domain.commission import CommissionRules, Payees, Progress, targets
from domain.custody import Ownership
from domain.errors import Conflict, DomainError
from domain.masked_pool import MaskedReportPool
from domain.policy import Policy, validate_settings
from domain.sealing import SEALED
from domain.services.deals import consultant_roles
from domain.values import Actor
from domain.visits import decide_and_record_visit, file_report_on

# A recorded event: eventsourcing's decoded events, typed loosely (their classes are
# the aggregates' nested event classes).
Event = Any

# ------------------------------------------------------------------- the rules in force


def overlay(policy: Policy, overrides: dict[str, Any]) -> Policy:
    """``policy`` with ``overrides`` on top, validated as a ``PUT`` of the policy is."""
    merged = validate_settings({**policy.settings(), **overrides})
    return Policy.from_settings(policy.version, merged)


@dataclass
class PolicyTimeline:
    """The project's policy versions by the instant they came into force, and the
    alternative: the same versions with the overrides on top from ``since`` on."""

    versions: list[tuple[Policy, datetime]]
    overrides: dict[str, Any]
    since: datetime
    _alt: dict[int, Policy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every version the alternative may use must validate with the overrides: a bad
        # combination (protection_max shorter than an overridden protection) is refused
        # before any replay, not half-way.
        for policy in [Policy(), *(p for p, _ in self.versions)]:
            self._alt[policy.version] = overlay(policy, self.overrides)

    def live(self, at: datetime) -> Policy:
        current = Policy()
        for policy, since in self.versions:
            if since > at:
                break
            current = policy
        return current

    def alternative(self, at: datetime) -> Policy:
        live = self.live(at)
        return self._alt[live.version] if at >= self.since else live


# ----------------------------------------------------------------------- the answer


@dataclass(frozen=True)
class Change:
    """One decision the alternative rules would take differently, for one buyer."""

    client_id: str
    kind: str  # owner | channel | report | report_outcome | expiry | release | refused | commission
    subject: str  # what changed: a report id, "protection", a fact, a payee
    live: str | None
    alternative: str | None
    detail: str = ""

    def as_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class BuyerOutcome:
    client_id: str
    changes: list[Change]
    facts: int  # recorded events replayed (facts and their consequences)
    commission: dict[tuple[str, str], tuple[int, int]]  # (kind, payee) → (live, alternative)


@dataclass(frozen=True)
class DealFacts:
    """A buyer's deal as the window's end saw it: who it paid, how far it got, the rules."""

    deal_id: str
    payees: Payees
    progress: Progress
    rules: CommissionRules


# Events a command writes as a consequence of the fact it records: the replay re-derives
# them by running the command, so they are never executed on their own.
DERIVED = frozenset(
    {
        "ReportAccepted",
        "ReportRejected",
        "ReportConfirmed",
        "ReportClosed",
        "MaskedReportMatched",
        "MaskedReportPassedOver",
        "OwnershipAwarded",
        "ScheduleUpdated",
        "ProtectionExtended",
        "ClaimedFromPoolApproved",
    }
)
# Facts that come from outside the rules (an office's register, an erased buyer's
# return): applied as recorded.
TRANSPLANTED = frozenset(
    {"ClientMigrated", "OwnershipMigrated", "FollowUpMigrated", "BuyerReturned"}
)


def _review(e: Any) -> tuple[str, str]:
    """A loss review's comment as the rules see it: a sealed comment was written (ADR
    0045), so it counts as present without being opened."""
    sealed: str = getattr(e, "sealed", "")
    return (e.comment or (SEALED if sealed else "")), sealed


def _trace(event: Event) -> dict[str, Any]:
    return {
        "actor": dict(getattr(event, "actor", {"id": "system", "role": "service"})),
        "correlation_id": str(getattr(event, "correlation_id", "what-if")),
    }


def _actor(event: Event) -> Actor:
    actor = getattr(event, "actor", {})
    return Actor(str(actor.get("id", "system")), str(actor.get("role", "service")))


def _name(event: Event) -> str:
    return type(event).__name__


def _fmt(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


# ----------------------------------------------------------------------- the replay


@dataclass
class _Deadline:
    """A live deadline that fired, still to fire in the alternative world."""

    kind: str  # report | protection | inactive
    subject: str
    lateness: Any  # timedelta after the alternative due time


class BuyerReplay:
    """One buyer's two worlds, kept in step fact by fact."""

    def __init__(
        self,
        timeline: PolicyTimeline,
        window: tuple[datetime, datetime],
        pools: dict[str, list[Event]],
    ) -> None:
        self.timeline = timeline
        self.since, self.until = window
        self.pools = pools  # recorded masked-pool events by pattern (前三后四)
        self.live: Any = None
        self.alt: Client | None = None
        self.refused: list[Change] = []
        self.late: list[_Deadline] = []
        self.alt_events: list[Event] = []
        self.deal_payees: dict[str, Payees] = {}
        # (when, live protected_until, live inactive_after) after each recorded event
        self.live_clocks: list[tuple[datetime, datetime | None, datetime | None]] = []

    # ------------------------------------------------------------------ stepping

    def run(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.timestamp >= self.until:
                break
            if self.alt is not None:
                self.fire_due(event.timestamp)
            self.execute(event)
            self.live = event.mutate(self.live)
            self.remember_live(event.timestamp)
            self.collect()
        if self.alt is not None:
            self.fire_due(self.until, final=True)
            self.collect()

    def collect(self) -> None:
        if self.alt is not None:
            self.alt_events.extend(self.alt.collect_events())

    def execute(self, event: Event) -> None:
        name = _name(event)
        if name == "ClientRegistered":
            e: Any = event
            self.alt = Client.register(
                event.originator_id,
                project_id=e.project_id,
                phone_masked=e.phone_masked,
                phone_hash=e.phone_hash,
                pii=e.pii,
                at=event.timestamp,
                trace=_trace(event),
            )
            return
        if name in DERIVED or self.alt is None:
            return
        command = getattr(self, f"on_{name}", None)
        if command is None:
            if name in TRANSPLANTED:
                self.transplant(event)
            return
        try:
            command(self.alt, event, self.timeline.alternative(event.timestamp))
        except DomainError as refused:
            self.refuse(event, str(refused))

    def refuse(self, event: Event, why: str) -> None:
        assert self.alt is not None
        self.refused.append(
            Change(
                str(self.alt.id),
                "refused",
                _name(event),
                event.timestamp.isoformat(),
                None,
                why,
            )
        )

    def transplant(self, event: Event) -> None:
        assert self.alt is not None
        moved = dataclasses.replace(event, originator_version=self.alt.version + 1)  # type: ignore[type-var]
        moved.mutate(self.alt)

    # ----------------------------------------------------------------- deadlines

    def fire_due(self, now: datetime, final: bool = False) -> None:
        """Fire every alternative deadline due by ``now``, earliest first."""
        alt = self.alt
        assert alt is not None
        for _ in range(64):  # each firing changes the state; a buyer has few deadlines
            due = self._next_due(now)
            if due is None:
                return
            at, kind, subject, late = due
            at = max(at, self._last_time())
            policy = self.timeline.alternative(at)
            trace = {"actor": {"id": "system", "role": "service"}, "correlation_id": "what-if"}
            try:
                if kind == "report":
                    alt.expire_report(subject, at, trace)
                elif kind == "protection":
                    alt.expire_protection(None, policy, at, trace)
                else:
                    alt.release_inactive(None, policy, at, trace)
            except DomainError:
                pass
            if late is not None:
                self.late.remove(late)
            self.collect()

    def _last_time(self) -> datetime:
        """When the alternative world last recorded anything: a deadline that came due
        while a fact was being taken fires after it, never back in time."""
        return self.alt_events[-1].timestamp if self.alt_events else self.since

    def _next_due(self, now: datetime) -> tuple[datetime, str, str, _Deadline | None] | None:
        alt, live = self.alt, self.live
        assert alt is not None
        found: list[tuple[datetime, str, str, _Deadline | None]] = []
        for report in alt.reports.values():
            if report.status != "accepted" or report.valid_until is None:
                continue
            mirror = live.reports.get(report.report_id) if live is not None else None
            live_due = mirror.valid_until if mirror is not None else None
            if report.valid_until <= now and (live_due is None or report.valid_until < live_due):
                found.append((report.valid_until, "report", report.report_id, None))
        owner = alt.owner
        if owner is not None and not alt.in_deal:
            due = owner.protected_until
            live_due = self._live_at(due)[0]
            if due <= now and (live_due is None or due < live_due):
                found.append((due, "protection", "protection", None))
            idle = alt.inactive_after
            if idle is not None and idle <= now:
                live_idle = self._live_at(idle)[1]
                if live_idle is None or idle < live_idle:
                    found.append((idle, "inactive", "inactive", None))
        for late in self.late:
            base = self._due_of(late)
            if base is not None and base + late.lateness <= now:
                found.append((base + late.lateness, late.kind, late.subject, late))
        return min(found, key=lambda f: f[0]) if found else None

    def remember_live(self, at: datetime) -> None:
        live = self.live
        owner = getattr(live, "owner", None)
        if owner is None or live.in_deal:
            self.live_clocks.append((at, None, None))
        else:
            self.live_clocks.append((at, owner.protected_until, live.inactive_after))

    def _live_at(self, moment: datetime) -> tuple[datetime | None, datetime | None]:
        """The live protection and inactivity deadlines as they stood at ``moment``: an
        alternative deadline is compared with the live one of its own time, not with
        what the live buyer became later."""
        for at, protected, idle in reversed(self.live_clocks):
            if at <= moment:
                return protected, idle
        return None, None

    def _due_of(self, late: _Deadline) -> datetime | None:
        alt = self.alt
        assert alt is not None
        if late.kind == "report":
            report = alt.reports.get(late.subject)
            return report.valid_until if report and report.status == "accepted" else None
        if alt.owner is None or alt.in_deal:
            return None
        return alt.owner.protected_until if late.kind == "protection" else alt.inactive_after

    def _postpone(self, kind: str, subject: str, live_due: datetime | None, at: datetime) -> None:
        """The live processor fired this deadline; the alternative one is not due yet:
        it fires later, as late after its own due time as the live one was."""
        lateness = at - live_due if live_due is not None else at - at
        self.late = [d for d in self.late if (d.kind, d.subject) != (kind, subject)]
        self.late.append(_Deadline(kind, subject, lateness))

    # ------------------------------------------------------------------ commands

    def on_ReportFiled(self, alt: Client, e: Any, policy: Policy) -> None:
        file_report_on(
            alt,
            report_id=e.report_id,
            partner_id=e.partner_id,
            agent_id=e.agent_id,
            expected_visit_at=e.expected_visit_at,
            pii=e.pii,
            policy=policy,
            at=e.timestamp,
            trace=_trace(e),
        )

    def on_ClientVisited(self, alt: Client, e: Any, policy: Policy) -> None:
        pool = self._pool_before(alt, e.timestamp)
        decide_and_record_visit(
            alt,
            pool,
            policy,
            visit_id=e.visit_id,
            consultant_id=e.consultant_id,
            partner_id=e.partner_id,
            agent_id=e.agent_id,
            pii=e.pii,
            reseal=lambda report: report.pii,
            at=e.timestamp,
            trace=_trace(e),
        )

    def _pool_before(self, alt: Client, at: datetime) -> MaskedReportPool | None:
        """The buyer's pattern pool as the alternative rules would have it just before
        ``at``: its recorded filings re-judged, its recorded consumptions kept."""
        recorded = self.pools.get(alt.phone_masked)
        if not recorded:
            return None
        opened: Any = recorded[0]
        pool = MaskedReportPool.open(
            opened.originator_id,
            project_id=opened.project_id,
            phone_masked=opened.phone_masked,
            at=opened.timestamp,
            trace=_trace(opened),
        )
        for event in recorded[1:]:
            if event.timestamp >= at:
                break
            e: Any = event
            name = _name(event)
            try:
                if name == "ReportFiled":
                    policy = self.timeline.alternative(e.timestamp)
                    file_report_on(
                        pool,
                        report_id=e.report_id,
                        partner_id=e.partner_id,
                        agent_id=e.agent_id,
                        expected_visit_at=e.expected_visit_at,
                        pii=e.pii,
                        policy=policy,
                        at=e.timestamp,
                        trace=_trace(e),
                    )
                elif name == "MaskedReportConsumed" and e.client_id != alt.id:
                    if pool.report(e.report_id).status == "accepted":
                        pool.consume(e.report_id, e.client_id, e.visit_id, e.timestamp, _trace(e))
                elif name == "ReportExpired":
                    pool.expire_report(e.report_id, e.timestamp, _trace(e))
            except DomainError:
                continue
        pool.collect_events()
        return pool

    def on_FollowUpLogged(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.log_follow_up(
            actor=_actor(e),
            follow_up_id=e.follow_up_id,
            method=e.method,
            effective=e.effective,
            next_contact_at=e.next_contact_at,
            grade=e.grade,
            pii=e.pii,
            policy=policy,
            at=e.timestamp,
            trace=_trace(e),
        )

    def on_GradeChanged(self, alt: Client, e: Any, policy: Policy) -> None:
        if e.reason == "set with a follow-up":
            return  # written by the follow-up itself
        alt.change_grade(_actor(e), e.grade, e.reason, policy, e.timestamp, _trace(e))

    def on_ProfileUpdated(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.update_profile(_actor(e), e.profile, e.timestamp, _trace(e))

    def on_ContactDisclosed(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.disclose_contact(e.principal_id, e.role, e.timestamp, _trace(e))

    def on_ReportExpired(self, alt: Client, e: Any, policy: Policy) -> None:
        if alt.expire_report(e.report_id, e.timestamp, _trace(e)):
            return
        report = alt.reports.get(e.report_id)
        if report is not None and report.status == "accepted":
            self._postpone("report", e.report_id, e.valid_until, e.timestamp)

    def on_ProtectionExpired(self, alt: Client, e: Any, policy: Policy) -> None:
        fired = alt.expire_protection(None, policy, e.timestamp, _trace(e))
        if not fired and alt.owner is not None:
            self._postpone("protection", "protection", e.protected_until, e.timestamp)

    def _inactive(self, alt: Client, e: Any, policy: Policy) -> None:
        live_due = getattr(self.live, "inactive_after", None)
        fired = alt.release_inactive(None, policy, e.timestamp, _trace(e))
        if not fired and alt.owner is not None:
            self._postpone("inactive", "inactive", live_due, e.timestamp)

    def on_ReleasedToPool(self, alt: Client, e: Any, policy: Policy) -> None:
        # Releases for expiry, loss and rulings come with their own fact; these two are
        # facts themselves: the inactivity deadline, and a departure without successor.
        if e.reason == "inactive":
            self._inactive(alt, e, policy)
        elif e.reason == "departure" and not alt.depart(
            e.previous_consultant_id, None, policy, e.timestamp, _trace(e)
        ):
            raise Conflict(f"{e.previous_consultant_id} does not own the buyer here")

    def on_OwnershipTransferred(self, alt: Client, e: Any, policy: Policy) -> None:
        if e.basis == "transfer":
            alt.transfer(
                to=e.consultant_id,
                basis="transfer",
                reason=e.reason,
                policy=policy,
                at=e.timestamp,
                trace=_trace(e),
            )
        elif e.basis == "departure":
            previous = e.previous_consultant_id
            if not alt.depart(previous, e.consultant_id, policy, e.timestamp, _trace(e)):
                raise Conflict(f"{previous} does not own the buyer here")
        elif e.basis == "expiry" and e.reason == "inactive":
            self._inactive(alt, e, policy)
        # expiry for protection and rulings come with ProtectionExpired / DisputeRuled

    def on_LossRequested(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.request_loss(_actor(e), e.request_id, e.reason, e.pii, e.timestamp, _trace(e))

    def on_LossApproved(self, alt: Client, e: Any, policy: Policy) -> None:
        comment, sealed = _review(e)
        alt.approve_loss(e.request_id, comment, policy, e.timestamp, _trace(e), sealed)

    def on_LossRejected(self, alt: Client, e: Any, policy: Policy) -> None:
        comment, sealed = _review(e)
        alt.reject_loss(e.request_id, comment, policy, e.timestamp, _trace(e), sealed)

    def on_ClaimRequested(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.request_claim(e.claim_id, e.consultant_id, e.timestamp, _trace(e))

    def on_ClaimRejected(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.reject_claim(e.claim_id, e.reason, e.timestamp, _trace(e))

    def on_ClaimedFromPool(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.claim(e.claim_id, e.consultant_id, e.approved_by, policy, e.timestamp, _trace(e))

    def on_DealMilestoneRecorded(self, alt: Client, e: Any, policy: Policy) -> None:
        deal = str(e.deal_id)
        if deal not in self.deal_payees:
            # The deal's attribution is taken from the owner when it opens (see
            # domain.services.deals): the alternative owner earns it instead.
            owner: Ownership | None = alt.owner
            self.deal_payees[deal] = (
                Payees(owner.partner_id, consultant_roles(alt, owner))
                if owner is not None
                else Payees(None, {})
            )
            if owner is None:
                self.refuse(e, "no owner to open a deal for in the alternative world")
        alt.record_deal_milestone(
            deal_id=e.deal_id,
            unit_id=e.unit_id,
            milestone=e.milestone,
            deal_status=e.deal_status,
            amount=e.amount,
            at=e.timestamp,
            trace=_trace(e),
        )

    def on_DisputeOpened(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.open_dispute(
            dispute_id=e.dispute_id,
            claimant_kind=e.claimant_kind,
            claimant_id=e.claimant_id,
            report_id=e.report_id,
            reason=e.reason,
            evidence_versions=[v for v in e.evidence_versions if v <= alt.version] or [1],
            at=e.timestamp,
            trace=_trace(e),
        )

    def on_DisputeRuled(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.rule_dispute(
            dispute_id=e.dispute_id,
            outcome=e.outcome,
            reason=e.reason,
            evidence_versions=[v for v in e.evidence_versions if v <= alt.version] or [1],
            policy=policy,
            at=e.timestamp,
            trace=_trace(e),
        )

    def on_DisputeAppealed(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.appeal_dispute(e.dispute_id, e.reason, e.timestamp, _trace(e))

    def on_PersonalDataErased(self, alt: Client, e: Any, policy: Policy) -> None:
        alt.erase(e.timestamp, _trace(e))


# --------------------------------------------------------------------- comparing


def _filings(events: Iterable[Event]) -> dict[str, tuple[bool, str | None]]:
    out: dict[str, tuple[bool, str | None]] = {}
    for event in events:
        e: Any = event
        if _name(event) == "ReportAccepted":
            out[e.report_id] = (True, None)
        elif _name(event) == "ReportRejected":
            out[e.report_id] = (False, e.reason)
    return out


def _moments(events: Iterable[Event]) -> dict[str, list[tuple[datetime, str]]]:
    """When each report expired, when protection ran out, and when the buyer left its
    owner for the pool or the manager (one sequence, whatever the reason: a buyer let go
    for inactivity instead of expiry is let go earlier or later, not twice)."""
    out: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for event in events:
        e: Any = event
        name = _name(event)
        if name == "ReportExpired":
            out[f"report {e.report_id} expiry"].append((event.timestamp, ""))
        elif name == "ProtectionExpired":
            out["protection expiry"].append((event.timestamp, ""))
        elif name == "ReleasedToPool":
            out["release"].append((event.timestamp, f"to pool ({e.reason})"))
        elif name == "OwnershipTransferred" and e.basis == "expiry":
            out["release"].append((event.timestamp, f"to manager ({e.reason})"))
    return out


def _owner(aggregate: Any) -> tuple[str | None, str | None]:
    owner = aggregate.owner if aggregate is not None else None
    return (owner.consultant_id, owner.partner_id) if owner is not None else (None, None)


def compare(
    replay: BuyerReplay, live_events: Sequence[Event], deals: Sequence[DealFacts]
) -> BuyerOutcome:
    alt = replay.alt
    assert alt is not None
    cid = str(alt.id)
    recorded = [e for e in live_events if e.timestamp < replay.until]
    changes: list[Change] = []
    (live_owner, live_partner), (alt_owner, alt_partner) = _owner(replay.live), _owner(alt)
    if live_owner != alt_owner:
        changes.append(Change(cid, "owner", "consultant", live_owner, alt_owner))
    if live_partner != alt_partner:
        changes.append(Change(cid, "channel", "partner", live_partner, alt_partner))
    live_filed, alt_filed = _filings(recorded), _filings(replay.alt_events)
    for report_id, (accepted, reason) in live_filed.items():
        other = alt_filed.get(report_id)
        if other is not None and other[0] != accepted:
            word = {True: "accepted", False: "rejected"}
            changes.append(
                Change(
                    cid,
                    "report",
                    report_id,
                    word[accepted] + (f" ({reason})" if reason else ""),
                    word[other[0]] + (f" ({other[1]})" if other[1] else ""),
                )
            )
    live_reports = replay.live.reports if replay.live is not None else {}
    for report_id, report in alt.reports.items():
        mirror = live_reports.get(report_id)
        if mirror is None or mirror.status == report.status:
            continue
        # A filing that flipped is listed once, as a flip, not again as an outcome.
        if live_filed.get(report_id, (None,))[0] == alt_filed.get(report_id, (None,))[0]:
            changes.append(Change(cid, "report_outcome", report_id, mirror.status, report.status))
    live_moments, alt_moments = _moments(recorded), _moments(replay.alt_events)
    for subject in sorted(set(live_moments) | set(alt_moments)):
        was, would = live_moments.get(subject, []), alt_moments.get(subject, [])
        kind = "release" if subject == "release" else "expiry"
        for i in range(max(len(was), len(would))):
            a, why_a = was[i] if i < len(was) else (None, "")
            b, why_b = would[i] if i < len(would) else (None, "")
            if (a, why_a) == (b, why_b):
                continue
            if a is None:
                detail = "earlier"  # the live record has none in the window: sooner than that
            elif b is None:
                detail = "not at all"
            elif a == b:
                detail = "same time"
            else:
                detail = "earlier" if b < a else "later"
            if kind == "release":
                # Where the buyer went: both reasons when they differ, else the one known.
                both = a is not None and b is not None and why_a != why_b
                detail += f" ({why_a} → {why_b})" if both else f" ({why_b or why_a})"
            changes.append(Change(cid, kind, subject, _fmt(a), _fmt(b), detail))
    changes.extend(replay.refused)
    commission: dict[tuple[str, str], tuple[int, int]] = {}
    for deal in deals:
        alt_payees = replay.deal_payees.get(deal.deal_id, deal.payees)
        live_amounts = _amounts(deal.rules, deal.payees, deal.progress)
        alt_amounts = _amounts(deal.rules, alt_payees, deal.progress)
        for key in sorted(set(live_amounts) | set(alt_amounts)):
            was_paid, would_pay = live_amounts.get(key, 0), alt_amounts.get(key, 0)
            old = commission.get(key, (0, 0))
            commission[key] = (old[0] + was_paid, old[1] + would_pay)
            if was_paid != would_pay:
                changes.append(
                    Change(
                        cid,
                        "commission",
                        f"{key[0]} {key[1]}",
                        str(was_paid),
                        str(would_pay),
                        deal.deal_id,
                    )
                )
    return BuyerOutcome(cid, changes, len(recorded), commission)


def _amounts(
    rules: CommissionRules, payees: Payees, progress: Progress
) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = defaultdict(int)
    for (kind, payee, _role, _milestone), target in targets(rules, payees, progress).items():
        out[(kind, payee)] += target.amount
    return dict(out)


def replay_buyer(
    events: Sequence[Event],
    *,
    timeline: PolicyTimeline,
    window: tuple[datetime, datetime],
    pools: dict[str, list[Event]],
    deals: Sequence[DealFacts] = (),
) -> BuyerOutcome | None:
    """Replay one buyer's recorded stream; None if it was not a buyer registered by a
    report or visit (nothing to re-decide)."""
    replay = BuyerReplay(timeline, window, pools)
    replay.run(events)
    if replay.alt is None:
        return None
    return compare(replay, events, deals)
