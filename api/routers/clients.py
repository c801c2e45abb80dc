"""客户: lookup, current state, the evidence chain and ownership as of any instant."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from api import bodies
from api.access import SERVERS, AccessDep, may
from api.bodies import answer, jsonable
from api.deps import AppDep, Caller, CallerDep, ContextDep
from api.integrity import integrity, read_integrity
from api.results import command_response
from api.schemas import ClientOut, ErasureOut, HistoryOut, LookupIn, LookupOut, OwnershipOut
from api.validation import Instant
from domain.client import Client
from yingke.bootstrap import Container

router = APIRouter(prefix="/v1/clients", tags=["clients"])

# Who sees in the history that someone was shown the buyer's number.
DISCLOSURE_READERS = ("manager", "auditor", "admin")


def visible_client(app: Container, caller: Caller, client_id: uuid.UUID) -> Client:
    client = app.clients.client(client_id)
    if not caller.covers(client.project_id):
        raise HTTPException(404, "client not found")
    return client


@router.post("/lookup", response_model=LookupOut)
def lookup(body: LookupIn, access: AccessDep, ctx: ContextDep) -> dict[str, Any]:
    """Find a buyer by phone. A POST keeps the number out of URLs and access logs. Every
    lookup is recorded (found or not; `lookup_audit`) and counts against
    YINGKE_LOOKUPS_PER_HOUR: past it, 429 `lookup_limit` with Retry-After. An erased
    buyer is not found."""
    access.project(body.project_id)
    cap = access.app.settings.lookups_per_hour
    found = access.app.contact.look_up(ctx, body.project_id, body.phone, cap)
    return {"client_id": str(found)}


@router.get("/{client_id}", response_model=ClientOut)
def get_client(client_id: uuid.UUID, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    """Current state, phone masked (前三后四); the demand profile (客户画像) for the
    people serving the buyer (their consultant, that one's supervisor, the managers)."""
    client = visible_client(app, caller, client_id)
    summary: dict[str, Any] = jsonable(bodies.client_summary(app.clients.client_summary(client_id)))
    if summary["personal_data_erased"]:
        _forget_masks(summary, *summary["reports"])
    if may(app, caller, SERVERS, client):
        summary["profile"] = jsonable(client.profile)
    return summary


@router.get("/{client_id}/history", response_model=HistoryOut)
def history(client_id: uuid.UUID, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    """Every event of the buyer's stream in order: the evidence chain for arbitration."""
    visible_client(app, caller, client_id)
    events = app.clients.history(client_id)
    if app.clients.client(client_id).erased:
        _forget_masks(*(e["data"] for e in events))
    if caller.role not in DISCLOSURE_READERS:
        events = [e for e in events if e["type"] != "ContactDisclosed"]
    return {"client_id": str(client_id), "events": events, "integrity": integrity(app, client_id)}


@router.get("/{client_id}/ownership", response_model=OwnershipOut)
def ownership(
    client_id: uuid.UUID,
    app: AppDep,
    caller: CallerDep,
    at: Annotated[Instant | None, Query(description="Instant to judge, ISO-8601 with zone")] = None,
) -> dict[str, Any]:
    """Who owned the buyer at ``at`` (default now), by replaying the stream up to then."""
    moment: datetime = at if at is not None else app.clock()
    # One chain-checked read and one replay serve the visibility check, the judgement
    # and the integrity field.
    client, owner = app.clients.ownership_read(client_id, moment)
    if not caller.covers(client.project_id):
        raise HTTPException(404, "client not found")
    version = owner.pop("stream_version")
    return {**owner, "integrity": read_integrity(app, client_id, version)}


@router.post("/{client_id}/erasure", response_model=ErasureOut)
def erase(client_id: uuid.UUID, app: AppDep, caller: CallerDep, ctx: ContextDep) -> Response:
    """Erase the buyer's personal data (PIPL): destroys their keys; the stream stays."""
    visible_client(app, caller, client_id)
    return command_response(
        app.clients.erase_personal_data(ctx.answering(answer(200, bodies.erased)), client_id)
    )


ERASED_MASK = "***********"


def _forget_masks(*shown: dict[str, Any]) -> None:
    """After erasure not even 前三后四 of the number leaves the service."""
    for body in shown:
        if "phone_masked" in body:
            body["phone_masked"] = ERASED_MASK
