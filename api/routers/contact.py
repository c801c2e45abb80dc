"""What the people serving a buyer need to work: the full contact, on the record, and the
follow-up notes. Everyone else keeps seeing the masked buyer."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel

from api import bodies
from api.authorization import GuardDep
from api.bodies import jsonable
from api.deps import AppDep, ContextDep

router = APIRouter(prefix="/v1/clients/{client_id}", tags=["clients"])
# ``enforce_access`` admitted only the people serving this buyer (``SERVERS``).


class ContactOut(BaseModel):
    client_id: str
    name: str | None
    phone: str | None
    disclosed_at: AwareDatetime


class FollowUpNote(BaseModel):
    follow_up_id: str
    at: AwareDatetime
    consultant_id: str
    method: str
    effective: bool
    grade: str | None
    next_contact_at: AwareDatetime | None
    summary: str | None
    version: int


class FollowUpsOut(BaseModel):
    client_id: str
    follow_ups: list[FollowUpNote]


@router.get("/contact", response_model=ContactOut)
def contact(client_id: uuid.UUID, app: AppDep, ctx: ContextDep) -> dict[str, Any]:
    """The buyer's full name and number (联系方式) for their consultant, that consultant's
    supervisor and the project's managers. Every call is recorded (ContactDisclosed) and
    counts against YINGKE_DISCLOSURES_PER_DAY; past it: 429 `disclosure_limit`."""
    cap = app.settings.disclosures_per_day
    shown: dict[str, Any] = jsonable(
        bodies.contact(app.contact.disclose_contact(ctx, client_id, cap).value)
    )
    return shown


@router.get("/follow-ups", response_model=FollowUpsOut)
def follow_ups(client_id: uuid.UUID, app: AppDep, guard: GuardDep) -> dict[str, Any]:
    """Every follow-up (跟进) in order with its note, for the people serving the buyer."""
    # The access check's read holds every event of a stream shorter than a snapshot's
    # interval (most buyers); a longer one is read whole once more.
    loaded = guard.loaded_client(client_id)
    notes = app.contact.follow_up_notes(client_id, loaded.events if loaded.base == 0 else None)
    return {
        "client_id": str(client_id),
        "follow_ups": [jsonable(bodies.follow_up_note(n)) for n in notes],
    }
