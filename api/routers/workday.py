"""The working day: an approver's inbox (待办审批) and a consultant's day (我的今日).

Both read the views (``?after=`` waits for your own writes) and add what a person needs
to act: names, the buyer's masked phone and name, the age of a request, and the link
(method and path) that decides it. Times are in the project's time zone (the policy's
``time_zone``, Asia/Shanghai by default), ISO 8601 with the offset.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.access import SERVERS
from api.deps import GLOBAL_ROLES, AppDep, Caller, CallerDep, FreshDep, get_container
from api.free_text import reads_notes
from domain.client import Client
from domain.sealing import SEALED
from domain.values import ERASED_PHONE_MASK, mask_name, zone
from projections import people, workday
from projections.pending_decisions import KINDS, PendingKind
from projections.queries import team_members
from yingke.bootstrap import Container

router = APIRouter(tags=["workday"], dependencies=[FreshDep])

Limit = Annotated[int, Query(ge=1, le=500, description="At most this many items per list")]


class Local:
    """Each project's zone, read once per request from its policy."""

    def __init__(self, app: Container) -> None:
        self.app = app
        self.zones: dict[str, tzinfo] = {}

    def zone(self, project_id: str) -> tzinfo:
        if project_id not in self.zones:
            self.zones[project_id] = zone(self.app.policies.policy_for(project_id).time_zone)
        return self.zones[project_id]

    def times(self, item: dict[str, Any], project_id: str) -> dict[str, Any]:
        """Every instant of ``item`` as local ISO 8601 with the offset."""
        tz = self.zone(project_id)
        return {
            k: v.astimezone(tz).isoformat() if isinstance(v, datetime) else v
            for k, v in item.items()
        }


class Buyers:
    """The buyers a page names, read together up front (two statements per 1,000 on
    PostgreSQL) rather than each stream once for its state and again for its name."""

    def __init__(self, app: Container, rows: Iterable[dict[str, Any]]) -> None:
        ids = [uuid.UUID(r["client_id"]) for r in rows if r.get("client_id")]
        self.app = app
        self.loaded = app.clients.many(ids) if ids else {}

    def client(self, client_id: str | None) -> Client | None:
        found = self.loaded.get(uuid.UUID(client_id)) if client_id else None
        return found.client if found is not None else None

    def name(self, client: Client) -> str | None:
        found = self.loaded.get(client.id)
        return self.app.clients.buyer_name(client, found.events if found else None)

    def loss_note(self, client: Client, request_id: str) -> str | None:
        found = self.loaded.get(client.id)
        return self.app.clients.loss_note(client, request_id, found.events if found else None)


def _mask(client: Client | None) -> str | None:
    if client is None:
        return None
    return ERASED_PHONE_MASK if client.erased else client.phone_masked


def _link(action: str, method: str, path: str) -> dict[str, str]:
    return {"action": action, "method": method, "path": path}


def _actions(kind: str, item_id: str, client_id: str | None) -> list[dict[str, str]]:
    if kind == "loss_request":
        base = f"/v1/clients/{client_id}/loss-requests/{item_id}"
        return [
            _link("approve", "POST", f"{base}/approve"),
            _link("reject", "POST", f"{base}/reject"),
            _link("history", "GET", f"/v1/clients/{client_id}/history"),
        ]
    if kind == "claim":
        base = f"/v1/clients/{client_id}/claims/{item_id}"
        return [
            _link("approve", "POST", f"{base}/approve"),
            _link("reject", "POST", f"{base}/reject"),
            _link("history", "GET", f"/v1/clients/{client_id}/history"),
        ]
    if kind in ("dispute", "appeal"):
        return [
            _link("rule", "POST", f"/v1/disputes/{item_id}/ruling"),
            _link("read", "GET", f"/v1/disputes/{item_id}"),
        ]
    return [
        _link("resume", "POST", f"/v1/consultants/{item_id}/departure"),
        _link("read", "GET", f"/v1/consultants/{item_id}/departure"),
    ]


def _dispute_reason(
    app: Container, caller: Caller, client: Client | None, kind: str, dispute_id: str
) -> str | None:
    """The claimant's (or appellant's) own words, opened for a reader of the buyer's notes
    (the ruler reads them to decide), else ``[sealed]`` (ADR 0045)."""
    if client is None or dispute_id not in client.disputes:
        return None
    view = app.disputes.dispute(dispute_id, reveal=reads_notes(app, caller, client))
    place = f"appeal:{dispute_id}" if kind == "appeal" else f"dispute:{dispute_id}"
    if view.texts is None:
        return SEALED
    text = view.texts.get(place)
    return None if text is None else str(text)


@router.get("/v1/inbox")
def inbox(
    request: Request,
    app: AppDep,
    caller: CallerDep,
    kind: PendingKind | None = None,
    project_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """What waits for the caller's decision, oldest first: a supervisor's team's loss
    requests (战败申请) and pool claims (捞客审批); for managers also the open disputes
    (申诉), appeals (复议) and departures (离职) still in progress at their projects.
    Each item carries the buyer (masked phone and name, grade), who asked and why, its
    age, and ``actions``: the method and path that decide it. ``counts`` per kind."""
    container = get_container(request)
    views, now = container.views, app.clock()
    kinds: tuple[str, ...] = KINDS
    consultant_ids: tuple[str, ...] | None = None
    if caller.role == "supervisor":
        kinds = workday.SUPERVISOR_KINDS
        if caller.team_id is not None:
            consultant_ids = (caller.id, *team_members(views, caller.team_id))
    if kind is not None:
        kinds = tuple(k for k in kinds if k == kind)
    project_ids = None if caller.role in GLOBAL_ROLES else caller.project_ids
    rows, counts = workday.inbox(
        views, project_ids, consultant_ids, kinds, project_id=project_id, limit=limit
    )
    named = people.names(views, (r[c] for r in rows for c in ("consultant_id", "requested_by")))
    local = Local(app)
    buyers = Buyers(app, rows)
    items = []
    for row in rows:
        client = buyers.client(row["client_id"])
        name = buyers.name(client) if client is not None else None
        reason, note = row["reason"], None
        if row["kind"] in ("dispute", "appeal"):
            reason = _dispute_reason(app, caller, client, row["kind"], row["item_id"])
        elif row["kind"] == "loss_request" and client is not None and caller.role in SERVERS:
            # The reviewers serve the buyer (their team's, their project's): they may read
            # the notes, as ``GET …/follow-ups`` lets them.
            note = buyers.loss_note(client, row["item_id"])
        item = {
            "kind": row["kind"],
            "id": row["item_id"],
            "project_id": row["project_id"],
            "client_id": row["client_id"],
            "buyer": None
            if client is None
            else {
                "phone_masked": _mask(client),
                "name_masked": mask_name(name) if name else None,
                "grade": client.grade,
            },
            "consultant_id": row["consultant_id"],
            "consultant_name": named.get(row["consultant_id"] or ""),
            "requested_by": row["requested_by"],
            "requested_by_name": named.get(row["requested_by"] or ""),
            "claimant_kind": row["reason"] if row["kind"] == "dispute" else None,
            "reason": reason,
            "note": note,
            "opened_at": row["opened_at"],
            "age_hours": int((now - row["opened_at"]).total_seconds() // 3600),
            "actions": _actions(row["kind"], row["item_id"], row["client_id"]),
        }
        items.append(local.times(item, row["project_id"]))
    return {"counts": counts, "total": sum(counts.values()), "items": items}


def _owned_by(client: Client | None, principal_id: str) -> bool:
    return (
        client is not None
        and client.owner is not None
        and (client.owner.consultant_id == principal_id)
    )


def _buyers(
    buyers: Buyers, caller: Caller, local: Local
) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """A maker of "my" rows: the buyer's full name only while the caller owns them."""

    def make(row: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        client = buyers.client(row["client_id"])
        owner = _owned_by(client, caller.id)
        name = buyers.name(client) if owner and client is not None else None
        return local.times(
            {
                "client_id": row["client_id"],
                "project_id": row["project_id"],
                "phone_masked": row.get("phone_masked"),
                "buyer_name": name,
                **item,
            },
            row["project_id"],
        )

    return make


@router.get("/v1/me/today")
def my_day(request: Request, app: AppDep, caller: CallerDep, limit: Limit = 100) -> dict[str, Any]:
    """My day (我的今日): follow-ups due today and overdue, protection (保护期) ending within
    3 and 7 days, buyers assigned to me in the last 24 hours, my requests still waiting
    for a decision, and how many of each. The buyer's full name is shown to the owner
    only; times are local to each buyer's project."""
    container = get_container(request)
    views, now = container.views, app.clock()
    local = Local(app)

    def end_of_today(project_id: str) -> datetime:
        here = now.astimezone(local.zone(project_id))
        midnight = here.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight + timedelta(days=1)

    due: list[dict[str, Any]] = []
    overdue: list[dict[str, Any]] = []
    for row in workday.due_tasks(views, caller.id, now + timedelta(days=1)):
        if row["due_at"] >= end_of_today(row["project_id"]):
            continue
        target = overdue if row["due_at"] <= now else due
        target.append(row)
    ending = workday.protection_ending(views, caller.id, now, timedelta(days=7))
    assigned = workday.assigned_since(views, caller.id, now - timedelta(days=1))
    requests = workday.requested_by(views, caller.id)
    shown = (overdue[:limit], due[:limit], ending[:limit], assigned[:limit], requests[:limit])
    buyers = Buyers(app, (row for rows in shown for row in rows))
    make = _buyers(buyers, caller, local)

    def task(row: dict[str, Any]) -> dict[str, Any]:
        return make(
            row,
            {
                "grade": row["grade"],
                "due_at": row["due_at"],
                "basis": row["basis"],
                "overdue_hours": max(0, int((now - row["due_at"]).total_seconds() // 3600)),
                "last_follow_up_at": row["last_follow_up_at"],
                "protected_until": row["protected_until"],
                "actions": [
                    _link("follow_up", "POST", f"/v1/clients/{row['client_id']}/follow-ups"),
                    _link("contact", "GET", f"/v1/clients/{row['client_id']}/contact"),
                ],
            },
        )

    def protection(row: dict[str, Any]) -> dict[str, Any]:
        within = 3 if row["protected_until"] < now + timedelta(days=3) else 7
        return make(
            row,
            {
                "protected_until": row["protected_until"],
                "ending_within_days": within,
                "basis": row["basis"],
            },
        )

    def assignment(row: dict[str, Any]) -> dict[str, Any]:
        return make(
            row,
            {
                "grade": row["grade"],
                "basis": row["basis"],
                "owned_since": row["owned_since"],
                "protected_until": row["protected_until"],
                "next_follow_up_due": row["next_follow_up_due"],
            },
        )

    def mine(row: dict[str, Any]) -> dict[str, Any]:
        return local.times(
            {
                "kind": row["kind"],
                "id": row["item_id"],
                "project_id": row["project_id"],
                "client_id": row["client_id"],
                "phone_masked": _mask(buyers.client(row["client_id"])),
                "reason": row["reason"] if row["kind"] == "loss_request" else None,
                "opened_at": row["opened_at"],
                "age_hours": int((now - row["opened_at"]).total_seconds() // 3600),
            },
            row["project_id"],
        )

    home = caller.project_ids[0] if caller.project_ids else None
    tz = local.zone(home) if home else zone("Asia/Shanghai")
    ending3 = [r for r in ending if r["protected_until"] < now + timedelta(days=3)]
    return {
        "principal_id": caller.id,
        "display_name": people.names(views, [caller.id]).get(caller.id, caller.id),
        "now": now.astimezone(tz).isoformat(),
        "date": now.astimezone(tz).date().isoformat(),
        "counts": {
            "overdue": len(overdue),
            "due_today": len(due),
            "protection_ending_3_days": len(ending3),
            "protection_ending_7_days": len(ending),
            "new_assignments": len(assigned),
            "pending_requests": len(requests),
        },
        "overdue": [task(r) for r in overdue[:limit]],
        "due_today": [task(r) for r in due[:limit]],
        "protection_ending": [protection(r) for r in ending[:limit]],
        "new_assignments": [assignment(r) for r in assigned[:limit]],
        "pending_requests": [mine(r) for r in requests[:limit]],
    }
