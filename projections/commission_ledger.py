"""commission_ledger: what does each channel partner and consultant earn (佣金)?

``commission_ledger`` sums the entries per project and payee: accrued, reversed, and
payable (accrued − reversed). ``commission_entries`` holds every entry as written in the
deal streams — accruals and reversals only, never an update — for audit and payout runs.
"""

from __future__ import annotations

from typing import Any

from domain.deal import Deal
from projections.common import month_of
from projections.runtime import Rows, Table

TABLE = Table(
    "commission_ledger",
    ("project_id", "payee_kind", "payee_id"),
    {
        "project_id": "text",
        "payee_kind": "text",  # channel | consultant
        "payee_id": "text",
        "accrued_fen": "int",
        "reversed_fen": "int",
        "payable_fen": "int",
        "entries": "int",
        "last_entry_at": "ts",
    },
    indexes=(("payee_kind", "payee_id"),),
)
ENTRIES = Table(
    "commission_entries",
    ("entry_id",),
    {
        "entry_id": "text",
        "deal_id": "text",
        "project_id": "text",
        "payee_kind": "text",
        "payee_id": "text",
        "role": "text",  # channel | first_receiver | accompanying | closing
        "milestone": "text",
        "kind": "text",  # accrued | reversed
        "amount_fen": "int",
        "reverses": "text",
        "reason": "text",
        "month": "text",
        "at": "ts",
        "position": "int",
    },
    indexes=(("deal_id",), ("project_id", "payee_kind", "payee_id", "position")),
)
DEALS = Table("commission_ledger__deals", ("deal_id",), {"deal_id": "text", "project_id": "text"})


class CommissionLedger:
    name = "commission_ledger"
    tables: tuple[Table, ...] = (TABLE, ENTRIES, DEALS)

    def handles(self, event: Any) -> bool:
        return isinstance(event, (Deal.DealOpened, Deal.CommissionAccrued, Deal.CommissionReversed))

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        deal_id = str(event.originator_id)
        if isinstance(event, Deal.DealOpened):
            rows.put(DEALS.name, {"deal_id": deal_id, "project_id": event.project_id})
            return
        deal = rows.get(DEALS.name, deal_id)
        if deal is None:
            return
        accrued = isinstance(event, Deal.CommissionAccrued)
        rows.put(
            ENTRIES.name,
            {
                "entry_id": event.entry_id,
                "deal_id": deal_id,
                "project_id": deal["project_id"],
                "payee_kind": event.payee_kind,
                "payee_id": event.payee_id,
                "role": event.role,
                "milestone": event.milestone,
                "kind": "accrued" if accrued else "reversed",
                "amount_fen": event.amount,
                "reverses": None if accrued else event.reverses,
                "reason": event.reason,
                "month": month_of(event.timestamp),
                "at": event.timestamp,
                "position": position,
            },
        )
        signed = event.amount if accrued else -event.amount
        row = rows.bump(
            TABLE.name,
            (deal["project_id"], event.payee_kind, event.payee_id),
            {"accrued_fen": 0, "reversed_fen": 0, "payable_fen": 0, "entries": 0},
            accrued_fen=event.amount if accrued else 0,
            reversed_fen=0 if accrued else event.amount,
            payable_fen=signed,
            entries=1,
        )
        row["last_entry_at"] = event.timestamp
