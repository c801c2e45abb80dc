"""Commission (佣金): per-project rules, versioned, and the arithmetic of the ledger.

Two kinds of payee earn on a deal: the channel partner (渠道返佣, a rate of the price per
partner) and the consultants (置业顾问, one rate split among the roles first receiver /
accompanying / closing). Nothing is earned until a share of the price has been received
(domain.md: "payout only once ≥30% of the price is received"); after that each payout
stage pays its share once its milestone is reached (70% at once, 20% after contract and
loan disbursement, 10% after delivery).

The ledger is never edited. ``settle`` compares what the stages allow now with what the
ledger holds and answers with accruals and whole-entry reversals only: a reversal always
cancels exactly one earlier accrual, and a lower amount is reversed and booked again.
Amounts are integer fen; every division rounds down, so a payee never gets more than the
rates allow.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput
from domain.values import NAMESPACE, check_identifier
from domain.versioned import VersionedSettings
from domain.vocabulary import CONSULTANT_ROLES, MILESTONES

BP = 10_000  # basis points in a whole: 100 bp = 1%, 10 bp = 1‰
CHANNEL = "channel"
CONSULTANT = "consultant"


def _default_split() -> dict[str, int]:
    return {"first_receiver": 5000, "accompanying": 3000, "closing": 2000}


def _default_stages() -> list[dict[str, Any]]:
    return [
        {"milestone": "threshold", "share_bp": 7000},
        {"milestone": "contract_and_loan", "share_bp": 2000},
        {"milestone": "delivery", "share_bp": 1000},
    ]


@dataclass(frozen=True)
class CommissionRules:
    version: int = 0
    default_channel_rate_bp: int = 100
    channel_rates_bp: dict[str, int] = field(default_factory=dict)
    consultant_rate_bp: int = 40
    consultant_split_bp: dict[str, int] = field(default_factory=_default_split)
    earn_threshold_bp: int = 3000
    payout_stages: list[dict[str, Any]] = field(default_factory=_default_stages)

    def channel_rate(self, partner_id: str) -> int:
        return self.channel_rates_bp.get(partner_id, self.default_channel_rate_bp)

    def settings(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("version")
        return data

    @classmethod
    def setting_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "version"]

    @classmethod
    def from_settings(cls, version: int, settings: dict[str, Any]) -> CommissionRules:
        known = {k: v for k, v in settings.items() if k in cls.setting_names()}
        return replace(cls(), version=version, **known)


# Every version stores the whole map; a bound keeps one policy event a sane size.
MAX_CHANNEL_RATES = 1000


def _basis_points(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= BP:
        raise InvalidInput(name, "must be whole basis points from 0 to 10000 (100 bp = 1%)")
    return value


def validate_commission_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Complete, canonical settings; missing fields take the defaults."""
    unknown = sorted(set(settings) - set(CommissionRules.setting_names()))
    if unknown:
        raise InvalidInput(unknown[0], "is not a commission setting", code="unknown_setting")
    merged = {**CommissionRules().settings(), **settings}
    for name in ("default_channel_rate_bp", "consultant_rate_bp", "earn_threshold_bp"):
        _basis_points(merged[name], name)
    rates = merged["channel_rates_bp"]
    if not isinstance(rates, dict) or len(rates) > MAX_CHANNEL_RATES:
        raise InvalidInput(
            "channel_rates_bp",
            f"must map at most {MAX_CHANNEL_RATES} partner ids to basis points",
        )
    for partner_id, rate in rates.items():
        check_identifier(partner_id, "channel_rates_bp")
        _basis_points(rate, f"channel_rates_bp.{partner_id}")
    split = merged["consultant_split_bp"]
    if not isinstance(split, dict) or set(split) != set(CONSULTANT_ROLES):
        raise InvalidInput(
            "consultant_split_bp", f"must give each of {', '.join(CONSULTANT_ROLES)} a share"
        )
    for role, share in split.items():
        _basis_points(share, f"consultant_split_bp.{role}")
    if sum(split.values()) != BP:
        raise InvalidInput("consultant_split_bp", "shares must add up to 10000 (100%)")
    merged["consultant_split_bp"] = {role: split[role] for role in CONSULTANT_ROLES}
    merged["payout_stages"] = _validate_stages(merged["payout_stages"])
    return merged


def _validate_stages(stages: Any) -> list[dict[str, Any]]:
    if not isinstance(stages, list) or not 1 <= len(stages) <= len(MILESTONES):
        raise InvalidInput("payout_stages", f"must list 1 to {len(MILESTONES)} stages")
    seen: set[str] = set()
    out = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict) or set(stage) != {"milestone", "share_bp"}:
            raise InvalidInput(f"payout_stages.{i}", "must be {milestone, share_bp}")
        if stage["milestone"] not in MILESTONES or stage["milestone"] in seen:
            raise InvalidInput(
                f"payout_stages.{i}.milestone",
                f"must be one of {', '.join(MILESTONES)}, each at most once",
            )
        seen.add(stage["milestone"])
        _basis_points(stage["share_bp"], f"payout_stages.{i}.share_bp")
        out.append({"milestone": stage["milestone"], "share_bp": stage["share_bp"]})
    if sum(s["share_bp"] for s in out) != BP:
        raise InvalidInput("payout_stages", "shares must add up to 10000 (100%)")
    return out


# ----------------------------------------------------------------- the ledger


@dataclass(frozen=True)
class Progress:
    """What a deal has reached, as the payout stages read it."""

    price: int | None  # the contract price once signed, else the subscription price
    received: int
    contract: bool = False
    loan_settled: bool = False  # the loan was disbursed, or the buyer takes no mortgage
    filed: bool = False
    delivered: bool = False
    certified: bool = False
    live: bool = True  # False once cancelled: nothing is earned on a cancelled deal


@dataclass(frozen=True)
class Payees:
    partner_id: str | None
    consultants: dict[str, str]  # role → consultant id


# (payee kind, payee id, role, milestone): one line of the ledger
LedgerKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class Target:
    amount: int
    base: int
    rate_bp: int
    split_bp: int
    share_bp: int


@dataclass(frozen=True)
class OpenAccrual:
    entry_id: str
    key: LedgerKey
    amount: int


@dataclass(frozen=True)
class Move:
    kind: str  # accrue | reverse
    key: LedgerKey
    amount: int
    reverses: str | None = None
    target: Target | None = None


def reached(progress: Progress, milestone: str, threshold_bp: int) -> bool:
    """A stage pays once the threshold share of the price is in and its milestone is met."""
    price = progress.price
    if not progress.live or price is None or price <= 0:
        return False
    if progress.received * BP < threshold_bp * price:
        return False
    return {
        "threshold": True,
        "contract": progress.contract,
        "contract_and_loan": progress.contract and progress.loan_settled,
        "filing": progress.filed,
        "delivery": progress.delivered,
        "certificate": progress.certified,
    }[milestone]


def targets(rules: CommissionRules, payees: Payees, progress: Progress) -> dict[LedgerKey, Target]:
    """What each ledger line should hold now; lines not listed should hold nothing."""
    out: dict[LedgerKey, Target] = {}
    price = progress.price or 0
    for stage in rules.payout_stages:
        milestone, share = stage["milestone"], stage["share_bp"]
        if not reached(progress, milestone, rules.earn_threshold_bp):
            continue
        if payees.partner_id:
            rate = rules.channel_rate(payees.partner_id)
            amount = price * rate * share // BP**2
            key = (CHANNEL, payees.partner_id, CHANNEL, milestone)
            out[key] = Target(amount, price, rate, BP, share)
        for role in CONSULTANT_ROLES:
            consultant = payees.consultants.get(role)
            if not consultant:
                continue
            rate, split = rules.consultant_rate_bp, rules.consultant_split_bp[role]
            amount = price * rate * split * share // BP**3
            out[(CONSULTANT, consultant, role, milestone)] = Target(
                amount, price, rate, split, share
            )
    return {k: t for k, t in out.items() if t.amount > 0}


def settle(open_accruals: list[OpenAccrual], goal: dict[LedgerKey, Target]) -> list[Move]:
    """Accruals and whole-entry reversals that bring every line to its target."""
    held: dict[LedgerKey, list[OpenAccrual]] = defaultdict(list)
    for accrual in open_accruals:
        held[accrual.key].append(accrual)
    moves: list[Move] = []
    for key in sorted(set(held) | set(goal)):
        target = goal.get(key)
        want = target.amount if target else 0
        have = sum(a.amount for a in held[key])
        if have == want:
            continue
        if have < want:
            moves.append(Move("accrue", key, want - have, target=target))
            continue
        moves += [Move("reverse", key, a.amount, reverses=a.entry_id) for a in held[key]]
        if want > 0:
            moves.append(Move("accrue", key, want, target=target))
    return moves


# ------------------------------------------------------------- the policy stream


class CommissionPolicy(VersionedSettings[CommissionRules]):
    """The stream of one project's commission rule versions (佣金方案)."""

    NAME = "commission policy"
    MISSING = "commission policy version {version} does not exist"

    @staticmethod
    def create_id(project_id: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"commission-policy:{project_id}")

    class CommissionPolicyChanged(Aggregate.Event):
        policy_version: int
        settings: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, CommissionPolicy)
            rules = CommissionRules.from_settings(self.policy_version, self.settings)
            aggregate.record(rules, self.timestamp)

    @staticmethod
    def defaults() -> CommissionRules:
        return CommissionRules()

    @staticmethod
    def validate(settings: dict[str, Any]) -> dict[str, Any]:
        return validate_commission_settings(settings)

    def changed_event(self) -> type[Aggregate.Event]:
        return self.CommissionPolicyChanged
