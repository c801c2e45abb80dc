"""A deal's commission ledger (佣金台账): append-only lines, kept in the deal's stream.

Every accrual and reversal is written in the same transaction as the deal fact that
caused it, so the ledger never disagrees with the deal. Lines are never edited: a change
of attribution or a cancellation reverses lines and accrues new ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.commission import (
    CommissionRules,
    LedgerKey,
    OpenAccrual,
    Payees,
    Progress,
    settle,
    targets,
)


@dataclass
class LedgerLine:
    entry_id: str
    kind: str  # accrued | reversed
    payee_kind: str  # channel | consultant
    payee_id: str
    role: str  # channel | first_receiver | accompanying | closing
    milestone: str
    amount: int
    reverses: str | None
    reason: str
    at: datetime
    reversed_by: str | None = None

    @property
    def key(self) -> LedgerKey:
        return (self.payee_kind, self.payee_id, self.role, self.milestone)


class CommissionLedger(Aggregate):
    class CommissionAccrued(Aggregate.Event):
        entry_id: str
        payee_kind: str
        payee_id: str
        role: str
        milestone: str
        amount: int
        base: int
        rate_bp: int
        split_bp: int
        share_bp: int
        commission_policy_version: int
        reason: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, CommissionLedger)
            aggregate.ledger.append(
                LedgerLine(
                    self.entry_id,
                    "accrued",
                    self.payee_kind,
                    self.payee_id,
                    self.role,
                    self.milestone,
                    self.amount,
                    None,
                    self.reason,
                    self.timestamp,
                )
            )

    class CommissionReversed(Aggregate.Event):
        entry_id: str
        reverses: str
        payee_kind: str
        payee_id: str
        role: str
        milestone: str
        amount: int
        reason: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, CommissionLedger)
            for line in aggregate.ledger:
                if line.entry_id == self.reverses:
                    line.reversed_by = self.entry_id
            aggregate.ledger.append(
                LedgerLine(
                    self.entry_id,
                    "reversed",
                    self.payee_kind,
                    self.payee_id,
                    self.role,
                    self.milestone,
                    self.amount,
                    self.reverses,
                    self.reason,
                    self.timestamp,
                )
            )

    def __init__(self) -> None:
        self.ledger: list[LedgerLine] = []

    def open_accruals(self) -> list[OpenAccrual]:
        return [
            OpenAccrual(line.entry_id, line.key, line.amount)
            for line in self.ledger
            if line.kind == "accrued" and line.reversed_by is None
        ]

    def settle_commission(
        self,
        rules: CommissionRules,
        payees: Payees,
        progress: Progress,
        reason: str,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        goal = targets(rules, payees, progress)
        for move in settle(self.open_accruals(), goal):
            kind, payee_id, role, milestone = move.key
            line = {
                "entry_id": f"{self.id}:{len(self.ledger) + 1}",
                "payee_kind": kind,
                "payee_id": payee_id,
                "role": role,
                "milestone": milestone,
                "amount": move.amount,
                "reason": reason,
            }
            if move.kind == "reverse":
                assert move.reverses is not None
                self.trigger_event(
                    self.CommissionReversed, reverses=move.reverses, timestamp=at, **line, **trace
                )
                continue
            assert move.target is not None
            self.trigger_event(
                self.CommissionAccrued,
                base=move.target.base,
                rate_bp=move.target.rate_bp,
                split_bp=move.target.split_bp,
                share_bp=move.target.share_bp,
                commission_policy_version=rules.version,
                timestamp=at,
                **line,
                **trace,
            )

    def commission_totals(self) -> dict[str, int]:
        accrued = sum(line.amount for line in self.ledger if line.kind == "accrued")
        reversed_ = sum(line.amount for line in self.ledger if line.kind == "reversed")
        return {"accrued_fen": accrued, "reversed_fen": reversed_, "net_fen": accrued - reversed_}
