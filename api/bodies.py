"""Response bodies: how the API shows the outcomes of the domain's commands and reads.

The services return domain values (aggregates, small outcome records); every JSON shape
the API answers with is built here, in one place, from those values. ``answer`` turns a
presenter into the ``respond`` function a command's unit of work calls, so a repeatable
request stores exactly the response it first gave.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from domain.client import Client
from domain.deal import Deal
from domain.departure import Departure
from domain.principal import Principal
from domain.reports import ReportState
from domain.services.clients import ClientAt, ClientView
from domain.services.contact import Contact, FollowUpNote
from domain.services.deals import DealView
from domain.services.departures import Move
from domain.services.disputes import DisputeView
from domain.services.followups import FollowUpLogged
from domain.services.policies import SettingsVersion
from domain.services.pool import ClaimOutcome, LossOutcome
from domain.services.reports import ReportView
from domain.services.units import UnitImport
from domain.services.uow import Respond, Response
from domain.services.visits import VisitOutcome
from domain.unit import Unit

R = TypeVar("R")
Body = dict[str, Any]


def jsonable(value: Any) -> Any:
    """Datetimes and UUIDs as strings: bodies are stored and replayed verbatim."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def answer(status: int, present: Callable[[R], Body]) -> Respond:
    """The respond function for a command answered with ``status`` and ``present``."""

    def respond(outcome: Any) -> Response:
        return Response(status, jsonable(present(outcome)))

    return respond


# ------------------------------------------------------------- principals


def principal(p: Principal) -> Body:
    return {
        "id": p.principal_id,
        "display_name": p.display_name,
        "role": p.role,
        "partner_id": p.partner_id,
        "project_ids": p.project_ids,
        "team_id": p.team_id,
        "wecom_user_id": p.wecom_user_id,
        "notify_webhook": p.notify_webhook,
        "revoked": p.revoked,
        "created_at": p.created_on,
    }


def registered(key: str) -> Respond:
    """The key is shown once: a replayed registration answers without it."""

    def respond(outcome: Any) -> Response:
        body = jsonable(principal(outcome))
        return Response(201, {**body, "key": key}, {**body, "key": None})

    return respond


# --------------------------------------------------------------- settings


def settings(version: SettingsVersion[Any]) -> Body:
    return {
        "project_id": version.project_id,
        "version": version.value.version,
        "effective_from": version.since,
        **version.value.settings(),
    }


# ---------------------------------------------------------------- reports


def report_state(
    project_id: str, report: ReportState, client_id: uuid.UUID | str | None, now: datetime
) -> Body:
    return {
        "report_id": report.report_id,
        "project_id": project_id,
        "partner_id": report.partner_id,
        "agent_id": report.agent_id,
        "status": report.status_at(now),
        "reason": report.reason,
        "client_id": client_id,
        "phone_masked": report.phone_masked,
        "masked": report.masked,
        "filed_at": report.filed_at,
        "valid_until": report.valid_until if report.status != "rejected" else None,
        "expected_visit_at": report.expected_visit_at,
        "policy_version": report.policy_version,
    }


def filed_report(view: ReportView) -> Body:
    return report_state(view.project_id, view.report, view.client_id, view.at)


def report(view: ReportView) -> Body:
    return {**filed_report(view), "client_name_masked": view.name_masked}


def visit(outcome: VisitOutcome) -> Body:
    return {
        "client_id": outcome.client.id,
        "visit_id": outcome.visit_id,
        "outcome": outcome.decision.kind,
        "owner": outcome.client.ownership_at(outcome.at),
    }


# ---------------------------------------------------------------- clients


def client_summary(view: ClientView) -> Body:
    client, now = view.client, view.at
    return {
        "client_id": client.id,
        "project_id": client.project_id,
        "phone_masked": client.phone_masked,
        "client_name_masked": view.name_masked,
        "registered_at": client.created_on,
        "version": client.version,
        "owner": client.ownership_at(now),
        "visits": len(client.visits),
        "last_visit_at": client.visits[-1].at if client.visits else None,
        "reports": [
            report_state(client.project_id, r, client.id, now) for r in client.reports.values()
        ],
        "personal_data_erased": client.erased,
    }


def contact(c: Contact) -> Body:
    return {
        "client_id": c.client_id,
        "name": c.name,
        "phone": c.phone,
        "disclosed_at": c.disclosed_at,
    }


def follow_up_note(n: FollowUpNote) -> Body:
    return {
        "follow_up_id": n.follow_up_id,
        "at": n.at,
        "consultant_id": n.consultant_id,
        "method": n.method,
        "effective": n.effective,
        "grade": n.grade,
        "next_contact_at": n.next_contact_at,
        "summary": n.summary,
        "version": n.version,
    }


def erased(client: Client) -> Body:
    return {"client_id": client.id, "personal_data_erased": True}


def _ownership(client: Client, now: datetime) -> Body:
    return {
        "client_id": client.id,
        "status": client.status,
        "owner": client.ownership_at(now),
        "grade": client.grade,
        "next_follow_up_due": client.next_follow_up_due,
        "inactive_after": client.inactive_after,
    }


def ownership(outcome: ClientAt) -> Body:
    return _ownership(outcome.client, outcome.at)


def follow_up(outcome: FollowUpLogged) -> Body:
    return {"follow_up_id": outcome.follow_up_id, **_ownership(outcome.client, outcome.at)}


def profile(outcome: ClientAt) -> Body:
    return {"client_id": outcome.client.id, "profile": outcome.client.profile}


def loss_requested(outcome: LossOutcome) -> Body:
    return {
        "client_id": outcome.client.id,
        "request_id": outcome.request_id,
        "status": "pending",
        "reason": outcome.reason,
    }


def loss_decided(outcome: LossOutcome) -> Body:
    client = outcome.client
    return {
        "client_id": client.id,
        "request_id": outcome.request_id,
        "status": client.loss_requests[outcome.request_id].status,
        "client_status": client.status,
    }


def claimed(outcome: ClaimOutcome) -> Body:
    return {
        **_ownership(outcome.client, outcome.at),
        "claim_id": outcome.claim_id,
        "status": outcome.status,
        "claims_used": outcome.claims_used,
        "claims_per_month": outcome.claims_per_month,
    }


def claim_decided(outcome: ClaimOutcome) -> Body:
    return {
        **_ownership(outcome.client, outcome.at),
        "claim_id": outcome.claim_id,
        "status": outcome.status,
    }


# ------------------------------------------------------------- departures


def departure(d: Departure) -> Body:
    return {
        "consultant_id": d.consultant_id,
        "successor_id": d.successor_id,
        "to_pool": d.successor_id is None,
        "status": d.status,
        "moved": sum(1 for o in d.moved.values() if o != "skipped"),
        "started_at": d.created_on,
    }


def move(m: Move) -> Body:
    return {"client_id": m.client_id, "outcome": m.outcome}


# --------------------------------------------------------------- disputes


def dispute(view: DisputeView) -> Body:
    client, d = view.client, view.dispute
    return {
        "dispute_id": d.dispute_id,
        "client_id": client.id,
        "project_id": client.project_id,
        "claimant_kind": d.claimant_kind,
        "claimant_id": d.claimant_id,
        "report_id": d.report_id,
        "reason": d.reason,
        "evidence_versions": d.evidence_versions,
        "status": d.status,
        "opened_by": d.opened_by,
        "opened_at": d.opened_at,
        "opened_version": d.opened_version,
        "owner_at_opening": d.owner_at_opening,
        "rulings": d.rulings,
        "appeal": d.appeal,
        "owner": client.ownership_at(view.at),
    }


# ------------------------------------------------------------------ units


def unit(u: Unit) -> Body:
    return {
        "unit_id": u.id,
        "project_id": u.project_id,
        "building": u.building,
        "number": u.number,
        "rooms": u.rooms,
        "area": float(u.area),
        "floor": u.floor,
        "orientation": u.orientation,
        "list_price_fen": u.list_price,
        "status": u.status,
        "deal_id": u.deal_id,
    }


def unit_import(done: UnitImport) -> Body:
    listed, revised = done.count("listed"), done.count("revised")
    return {
        "project_id": done.project_id,
        "rows": done.rows,
        "listed": listed,
        "revised": revised,
        "unchanged": done.rows - listed - revised,
        "units": [
            {"unit_id": u.unit_id, "building": u.building, "number": u.number, "outcome": u.outcome}
            for u in done.units
        ],
    }


# ------------------------------------------------------------------ deals


def deal(view: DealView) -> Body:
    d: Deal = view.deal
    price = d.agreed_price
    return {
        "deal_id": d.id,
        "project_id": d.project_id,
        "client_id": d.client_id,
        "unit": {
            "unit_id": d.unit_id,
            "building": d.building,
            "number": d.number,
            "list_price_fen": d.list_price,
        },
        "stage": d.stage,
        "status": d.status,
        "stage_since": d.stage_since,
        "opened_at": d.created_on,
        "version": d.version,
        "attribution": d.attribution.as_dict(),
        "roles": d.roles,
        "commission_policy_version": d.commission_policy_version,
        "deposit_fen": d.deposit,
        "deposit_method": d.deposit_method,
        "signing_deadline": d.signing_deadline,
        "signing_overdue": d.signing_overdue(view.at),
        "payment_plan": d.payment_plan,
        "subscription_price_fen": d.price,
        "contract_no": d.contract_no,
        "contract_price_fen": d.contract_price,
        "price_fen": price,
        "received_fen": d.received,
        "outstanding_fen": price - d.received if price is not None else None,
        "loan": {
            "status": d.loan_status,
            "bank": d.loan_bank,
            "amount_fen": d.loan_amount,
            "disbursed_fen": d.loan_disbursed,
        },
        "filing_no": d.filing_no,
        "certificate_no": d.certificate_no,
        "cancellation": d.cancellation,
        "swaps": d.swaps,
        "buyer_name_masked": view.buyer_name_masked,
        "milestones": d.milestones,
        "commission": {
            **d.commission_totals(),
            "entries": [
                {
                    "entry_id": line.entry_id,
                    "kind": line.kind,
                    "payee_kind": line.payee_kind,
                    "payee_id": line.payee_id,
                    "role": line.role,
                    "milestone": line.milestone,
                    "amount_fen": line.amount,
                    "reverses": line.reverses,
                    "reversed_by": line.reversed_by,
                    "reason": line.reason,
                    "at": line.at,
                }
                for line in d.ledger
            ],
        },
    }
