"""证据包: a buyer's evidence bundle for arbitration, as JSON or a printable PDF."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from api import evidence_pdf
from api.authorization import GuardDep
from api.deps import AppDep, Caller, CallerDep
from api.evidence_views import for_reader
from api.free_text import author, reads_notes
from api.validation import Instant
from domain.services.clients import Loaded
from yingke.bootstrap import Container
from yingke.evidence import build_bundle

router = APIRouter(prefix="/v1/clients", tags=["clients"])

PDF = "application/pdf"


def bundle_for(
    app: Container,
    caller: Caller,
    client_id: uuid.UUID,
    at: datetime | None,
    loaded: Loaded | None = None,
) -> dict[str, Any]:
    """The bundle as this caller may read it (shared with the auditor's page).
    ``loaded``: the buyer as the caller read it; it serves the bundle when it holds the
    whole stream (``base`` 0), else the stream is read whole once, here."""
    whole = loaded if loaded is not None and loaded.base == 0 else app.clients.whole(client_id)
    client = whole.client
    reveal = reads_notes(app, caller, client)
    standing = {
        "disputes": [
            {"claimant_id": d.claimant_id, "owner_at_opening": d.owner_at_opening}
            for d in client.disputes.values()
        ]
    }
    own = {caller.id} | ({caller.partner_id} if caller.role == "channel_agent" else set())
    # A claimant reads its own claim, as `GET /v1/disputes/{id}` shows it.
    claims = [d.dispute_id for d in client.disputes.values() if d.claimant_id in own]
    bundle = build_bundle(
        app, client_id, at, reveal=reveal, claims=claims, author=author(caller), whole=whole
    )
    return for_reader(bundle, caller, standing)


def pdf_response(bundle: dict[str, Any]) -> Response:
    name = f"evidence-{bundle['client_id']}.pdf"
    return Response(
        evidence_pdf.render(bundle),
        media_type=PDF,
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


@router.get(
    "/{client_id}/evidence",
    responses={
        200: {
            "description": "The bundle: JSON, or a PDF with `Accept: application/pdf`",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                PDF: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
def evidence(
    client_id: uuid.UUID,
    app: AppDep,
    caller: CallerDep,
    guard: GuardDep,
    at: Annotated[
        Instant | None, Query(description="Evidence as of this instant (default now)")
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    """The evidence bundle (证据包) for arbitration: the timeline (time, actor, request id;
    personal data masked), the owner after each decision and its basis, the full text of
    each policy version applied, the competing reports and why each lost, disputes and
    rulings, every event's chain hash and the signed checkpoint covering them, and how to
    verify it all (`yingke verify`, keys at /v1/receipts/keys). Auditors and admins see
    every buyer, managers their projects'; a consultant or channel only as a party to a
    dispute over the buyer, without the other side's people and reports."""
    # The access check's read serves the bundle when it holds the whole stream (a stream
    # shorter than a snapshot's interval: most buyers).
    bundle = bundle_for(app, caller, client_id, at, guard.loaded_client(client_id))
    if accept and PDF in accept.lower():
        return pdf_response(bundle)
    return bundle
