"""客户: lookup, current state, the evidence chain and ownership as of any instant."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api import bodies
from api.access import SERVERS, may
from api.authorization import SEES_DISCLOSURES, GuardDep
from api.bodies import answer, jsonable
from api.deps import AppDep, ContextDep
from api.free_text import reads_notes
from api.integrity import integrity, read_integrity
from api.results import command_response
from api.schemas import ClientOut, ErasureOut, HistoryOut, LookupIn, LookupOut, OwnershipOut
from api.validation import Instant
from domain.values import ERASED_PHONE_MASK

router = APIRouter(prefix="/v1/clients", tags=["clients"])

# Every route here names the buyer in its path: ``enforce_access`` has judged the caller's
# relation to it (404 otherwise) before the route runs.


@router.post("/lookup", response_model=LookupOut)
def lookup(body: LookupIn, app: AppDep, guard: GuardDep, ctx: ContextDep) -> dict[str, Any]:
    """Find a buyer by phone. A POST keeps the number out of URLs and access logs. Every
    lookup is recorded (found or not; `lookup_audit`) and counts against
    YINGKE_LOOKUPS_PER_HOUR: past it, 429 `lookup_limit` with Retry-After. An erased
    buyer is not found."""
    guard.project(body.project_id)
    cap = app.settings.lookups_per_hour
    found = app.contact.look_up(ctx, body.project_id, body.phone, cap)
    return {"client_id": str(found)}


@router.get("/{client_id}", response_model=ClientOut)
def get_client(client_id: uuid.UUID, app: AppDep, guard: GuardDep) -> dict[str, Any]:
    """Current state, phone masked (前三后四); the demand profile (客户画像) for the
    people serving the buyer (their consultant, that one's supervisor, the managers)."""
    client = guard.client(client_id)
    view = app.clients.client_summary(client_id, client)
    summary: dict[str, Any] = jsonable(bodies.client_summary(view))
    if summary["personal_data_erased"]:
        _forget_masks(summary, *summary["reports"])
    if may(app, guard.caller, SERVERS, client):
        summary["profile"] = jsonable(app.clients.profile(client))
    return summary


@router.get("/{client_id}/history", response_model=HistoryOut)
def history(client_id: uuid.UUID, app: AppDep, guard: GuardDep) -> dict[str, Any]:
    """Every event of the buyer's stream in order: the evidence chain for arbitration."""
    loaded = guard.loaded_client(client_id)
    client = loaded.client
    # The guard's read holds every event of a stream shorter than a snapshot's interval
    # (most buyers); a longer one is read whole once more, with its head's hash.
    whole = loaded if loaded.base == 0 else app.clients.whole(client_id)
    reveal = reads_notes(app, guard.caller, client)
    events = app.clients.history(client_id, reveal, client, whole.events)
    checked = (
        read_integrity(app, client_id, events[-1]["version"], whole.head)
        if events
        else integrity(app, client_id)
    )
    _forget_masks(*(e["data"] for e in events if client.text_erased(e["version"])))
    if guard.caller.role not in SEES_DISCLOSURES:
        events = [e for e in events if e["type"] != "ContactDisclosed"]
    return {"client_id": str(client_id), "events": events, "integrity": checked}


@router.get("/{client_id}/ownership", response_model=OwnershipOut)
def ownership(
    client_id: uuid.UUID,
    app: AppDep,
    guard: GuardDep,
    at: Annotated[Instant | None, Query(description="Instant to judge, ISO-8601 with zone")] = None,
) -> dict[str, Any]:
    """Who owned the buyer at ``at`` (default now), by replaying the stream up to then."""
    moment: datetime = at if at is not None else app.clock()
    # The guard judged the buyer already (enforce_access); its chain-checked read and
    # replay serve the judgement now and the integrity field (the head's hash came with
    # the events); an earlier ``at`` folds once more, from the snapshot before it.
    loaded = guard.loaded_client(client_id)
    reveal = reads_notes(app, guard.caller, loaded.client)
    owner = app.clients.ownership_read(client_id, moment, reveal, loaded)[1]
    version = owner.pop("stream_version")
    return {**owner, "integrity": read_integrity(app, client_id, version, loaded.head)}


@router.post("/{client_id}/erasure", response_model=ErasureOut)
def erase(client_id: uuid.UUID, app: AppDep, ctx: ContextDep) -> Response:
    """Erase the buyer's personal data (PIPL): destroys their keys; the stream stays."""
    return command_response(
        app.clients.erase_personal_data(ctx.answering(answer(200, bodies.erased)), client_id)
    )


ERASED_MASK = ERASED_PHONE_MASK


def _forget_masks(*shown: dict[str, Any]) -> None:
    """After erasure not even 前三后四 of the number leaves the service."""
    for body in shown:
        if "phone_masked" in body:
            body["phone_masked"] = ERASED_MASK
