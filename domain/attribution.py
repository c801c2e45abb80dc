"""The attribution rules (判客) as pure functions.

Kept apart from the aggregates so the rules read in one place and can be replayed or
compared against a reference model without any storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.policy import Policy


@dataclass(frozen=True)
class Claim:
    """A still-valid accepted report that could win a visit."""

    report_id: str
    partner_id: str
    filed_at: datetime
    valid_until: datetime
    masked: bool
    sequence: int  # position in the stream that holds it: breaks filed_at ties

    @property
    def order(self) -> tuple[datetime, bool, int, str]:
        # Same instant: a full-number report beats a masked one (it names the buyer
        # exactly), then stream order, then the id so the answer never depends on luck.
        return (self.filed_at, self.masked, self.sequence, self.report_id)


@dataclass(frozen=True)
class OwnerView:
    consultant_id: str | None
    partner_id: str | None
    protected_until: datetime


@dataclass(frozen=True)
class FilingDecision:
    accepted: bool
    reason: str | None


@dataclass(frozen=True)
class VisitDecision:
    kind: str  # "protected" | "report" | "walk_in"
    winner: Claim | None
    losers: tuple[tuple[Claim, str], ...]


def is_protected(owner: OwnerView | None, now: datetime) -> bool:
    return owner is not None and now < owner.protected_until


def decide_filing(
    policy: Policy,
    now: datetime,
    partner_id: str,
    owner: OwnerView | None,
    valid_claims: list[Claim],
    last_visit_at: datetime | None,
) -> FilingDecision:
    """May ``partner_id`` report this buyer now?

    A buyer seen at the office within ``recent_visit_window`` before the report cannot be
    reported (防截客: the walk-in beats a later report), even once nobody owns them any
    more; the reason says only that, never who served the buyer.
    """
    if is_protected(owner, now):
        assert owner is not None
        same = owner.partner_id == partner_id
        return FilingDecision(False, "duplicate" if same else "protected")
    if last_visit_at is not None and now - last_visit_at < policy.delta("recent_visit_window"):
        return FilingDecision(False, "recent_visit")
    if any(c.partner_id == partner_id for c in valid_claims):
        return FilingDecision(False, "duplicate")
    if policy.judge_rule == "report_first" and valid_claims:
        return FilingDecision(False, "protected")
    return FilingDecision(True, None)


def decide_visit(
    policy: Policy,
    now: datetime,
    owner: OwnerView | None,
    valid_claims: list[Claim],
    accompanying_partner: str | None,
) -> VisitDecision:
    """Who owns the buyer after this visit, and which reports lose."""
    if is_protected(owner, now):
        return VisitDecision("protected", None, ())
    if not valid_claims:
        return VisitDecision("walk_in", None, ())
    ranked = sorted(valid_claims, key=lambda c: c.order)
    loss_reason = "lost_to_earlier_report"
    winner = ranked[0]
    if policy.judge_rule == "visit_first" and accompanying_partner is not None:
        accompanied = [c for c in ranked if c.partner_id == accompanying_partner]
        if accompanied:
            winner = accompanied[0]
            loss_reason = "lost_to_accompanied_visit"
    losers = tuple(
        (c, "superseded_by_own_report" if c.partner_id == winner.partner_id else loss_reason)
        for c in ranked
        if c is not winner
    )
    return VisitDecision("report", winner, losers)


def decide_masked_filing(
    policy: Policy, now: datetime, partner_id: str, valid_claims: list[Claim]
) -> FilingDecision:
    """A masked report cannot know its buyer yet: only the policy and the same channel's
    own earlier masked report on the pattern can refuse it. Channels that collide on a
    pattern are told apart at the visit, earliest valid claim first."""
    if policy.masked_reports == "forbidden":
        return FilingDecision(False, "masked_not_allowed")
    if any(c.partner_id == partner_id for c in valid_claims):
        return FilingDecision(False, "duplicate")
    return FilingDecision(True, None)
