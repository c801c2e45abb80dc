"""payment_collection: how much money is expected and how much came in (回款), per
project and month (China time)?

``expected_fen`` is the contract value signed in the month, less the contract value of
contracted deals cancelled in the month: what the sales office has to collect from that
month's business. ``received_fen`` is what came in that month (deposits, down payments,
instalments, loan disbursements); refunds due and forfeited deposits are booked in the
month of the cancellation.
"""

from __future__ import annotations

from typing import Any

from domain.deal import Deal
from projections.common import month_of
from projections.runtime import Rows, Table

COUNTERS = (
    "expected_fen",
    "contracted_fen",
    "cancelled_contract_fen",
    "received_fen",
    "deposits_fen",
    "loan_disbursed_fen",
    "refunds_due_fen",
    "forfeited_fen",
    "deals_contracted",
    "deals_cancelled",
)
TABLE = Table(
    "payment_collection",
    ("project_id", "month"),
    {"project_id": "text", "month": "text", **dict.fromkeys(COUNTERS, "int")},
)
DEALS = Table(
    "payment_collection__deals",
    ("deal_id",),
    {"deal_id": "text", "project_id": "text", "contract_price_fen": "int"},
)


class PaymentCollection:
    name = "payment_collection"
    tables: tuple[Table, ...] = (TABLE, DEALS)

    def handles(self, event: Any) -> bool:
        return isinstance(
            event,
            (
                Deal.DealOpened,
                Deal.DepositPaid,
                Deal.PaymentReceived,
                Deal.ContractSigned,
                Deal.DealCancelled,
            ),
        )

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        key = str(event.originator_id)
        if isinstance(event, Deal.DealOpened):
            rows.put(
                DEALS.name,
                {"deal_id": key, "project_id": event.project_id, "contract_price_fen": None},
            )
            return
        deal = rows.get(DEALS.name, key)
        if deal is None:
            return
        bump: dict[str, int] = {}
        if isinstance(event, Deal.DepositPaid):
            bump = {"received_fen": event.amount, "deposits_fen": event.amount}
        elif isinstance(event, Deal.PaymentReceived):
            bump = {"received_fen": event.amount}
            if event.kind == "loan_disbursement":
                bump["loan_disbursed_fen"] = event.amount
        elif isinstance(event, Deal.ContractSigned):
            rows.put(DEALS.name, {**deal, "contract_price_fen": event.price})
            bump = {
                "expected_fen": event.price,
                "contracted_fen": event.price,
                "deals_contracted": 1,
            }
        elif isinstance(event, Deal.DealCancelled):
            contracted = deal["contract_price_fen"] or 0
            bump = {
                "expected_fen": -contracted,
                "cancelled_contract_fen": contracted,
                "refunds_due_fen": event.refund,
                "forfeited_fen": event.forfeited,
                "deals_cancelled": 1,
            }
        key_ = (deal["project_id"], month_of(event.timestamp))
        rows.bump(TABLE.name, key_, dict.fromkeys(COUNTERS, 0), **bump)
