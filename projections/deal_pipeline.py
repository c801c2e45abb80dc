"""deal_pipeline: where is every deal (成交) now? One row per deal: its stage and since
when, amounts agreed and received, the signing deadline, refunds and commission.

Age in stage and overdue signing deadlines are computed at query time from
``stage_since`` and ``signing_deadline``; the deadline processor also reads this table
to leave buyers in a deal alone.
"""

from __future__ import annotations

from typing import Any

from domain.deal import Deal
from projections.runtime import Rows, Table

TABLE = Table(
    "deal_pipeline",
    ("deal_id",),
    {
        "deal_id": "text",
        "project_id": "text",
        "client_id": "text",
        "unit_id": "text",
        "building": "text",
        "number": "text",
        "consultant_id": "text",
        "partner_id": "text",
        "basis": "text",
        "stage": "text",
        "status": "text",  # open | completed | cancelled
        "stage_since": "ts",
        "opened_at": "ts",
        "closed_at": "ts",
        "list_price_fen": "int",
        "deposit_fen": "int",
        "price_fen": "int",
        "contract_price_fen": "int",
        "received_fen": "int",
        "payment_plan": "text",
        "loan_status": "text",
        "signing_deadline": "ts",
        "cancel_fault": "text",
        "refund_fen": "int",
        "forfeited_fen": "int",
        "commission_accrued_fen": "int",
        "commission_reversed_fen": "int",
        "updated_at": "ts",
        "version": "int",
    },
    indexes=(
        ("project_id", "stage"),
        ("consultant_id", "status"),
        ("client_id", "status"),
        ("signing_deadline",),
    ),
)

_STAGES = {
    Deal.DepositPaid: "deposit_paid",
    Deal.SubscriptionSigned: "subscribed",
    Deal.ContractSigned: "contracted",
    Deal.ContractFiled: "filed",
    Deal.UnitDelivered: "delivered",
    Deal.CertificateIssued: "certified",
    Deal.DealCancelled: "cancelled",
}


class DealPipeline:
    name = "deal_pipeline"
    tables: tuple[Table, ...] = (TABLE,)

    def handles(self, event: Any) -> bool:
        return isinstance(event, Deal.Event)

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        key = str(event.originator_id)
        if isinstance(event, Deal.DealOpened):
            row = rows.put(TABLE.name, self._opened(event))
        else:
            found = rows.get(TABLE.name, key)
            if found is None:
                return
            row = rows.put(TABLE.name, found)
            self._change(row, event)
            stage = next((s for cls, s in _STAGES.items() if isinstance(event, cls)), None)
            if stage is not None:
                row.update(stage=stage, stage_since=event.timestamp)
        row["updated_at"] = event.timestamp
        row["version"] = event.originator_version

    @staticmethod
    def _opened(event: Any) -> dict[str, Any]:
        return {
            "deal_id": str(event.originator_id),
            "project_id": event.project_id,
            "client_id": str(event.client_id),
            "unit_id": str(event.unit_id),
            "building": event.building,
            "number": event.number,
            "consultant_id": event.consultant_id,
            "partner_id": event.partner_id,
            "basis": event.basis,
            "stage": "opened",
            "status": "open",
            "stage_since": event.timestamp,
            "opened_at": event.timestamp,
            "list_price_fen": event.list_price,
            "deposit_fen": 0,
            "received_fen": 0,
            "loan_status": "none",
            "commission_accrued_fen": 0,
            "commission_reversed_fen": 0,
        }

    @staticmethod
    def _change(row: dict[str, Any], event: Any) -> None:
        if isinstance(event, Deal.DepositPaid):
            row.update(
                deposit_fen=event.amount,
                received_fen=event.running_total,
                signing_deadline=event.signing_deadline,
            )
        elif isinstance(event, Deal.SubscriptionSigned):
            row.update(price_fen=event.price, payment_plan=event.payment_plan)
            if event.signing_deadline is not None:
                row["signing_deadline"] = event.signing_deadline
        elif isinstance(event, Deal.LoanApplied):
            row["loan_status"] = "applied"
        elif isinstance(event, Deal.LoanApproved):
            row["loan_status"] = "approved"
        elif isinstance(event, Deal.LoanRefused):
            row["loan_status"] = "refused"
        elif isinstance(event, Deal.ContractSigned):
            row.update(price_fen=event.price, contract_price_fen=event.price)
        elif isinstance(event, Deal.PaymentReceived):
            row["received_fen"] = event.running_total
        elif isinstance(event, Deal.CertificateIssued):
            row.update(status="completed", closed_at=event.timestamp)
        elif isinstance(event, Deal.DealCancelled):
            row.update(
                status="cancelled",
                closed_at=event.timestamp,
                cancel_fault=event.fault,
                refund_fen=event.refund,
                forfeited_fen=event.forfeited,
            )
        elif isinstance(event, Deal.UnitSwapped):
            row.update(
                unit_id=str(event.unit_id),
                building=event.building,
                number=event.number,
                list_price_fen=event.list_price,
                price_fen=None,
                payment_plan=None,
                loan_status="none",
                stage=event.stage,
                stage_since=event.timestamp,
            )
        elif isinstance(event, Deal.DealReattributed):
            row.update(
                consultant_id=event.consultant_id,
                partner_id=event.partner_id,
                basis=event.basis,
            )
        elif isinstance(event, Deal.CommissionAccrued):
            row["commission_accrued_fen"] += event.amount
        elif isinstance(event, Deal.CommissionReversed):
            row["commission_reversed_fen"] += event.amount
