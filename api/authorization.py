"""The one access policy: for every operation, the roles that may call it and, per role,
the relation the caller must have to the object it touches (ADR 0043).

The relations (``any``, ``project``, ``team``, ``own``, ``partner``) are defined in
``api.access``. ``enforce_access`` (an app-level dependency) applies the table to every
request:

- a role the operation does not list: 403 ``role X may not do this``;
- an object named in the path (``client_id``, ``deal_id``, ``dispute_id``, ``report_id``,
  ``consultant_id``, ``project_id``, ``unit_id`` and ``job_id``) is loaded and judged before
  the body is read: one the caller does not relate to answers exactly like a missing one (404), so
  ids reveal nothing;
- lists and views read through the ``Scope`` the caller's relation gives (``ScopeDep``);
- a route that finds its object in the body asks the same ``Guard`` (``GuardDep``).

``python -m api.authorization`` rewrites the README's role table from ``TABLE``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from api.access import (
    SERVERS,
    Relation,
    in_team,
    relates,
    relates_to_deal,
    relates_to_dispute,
    relates_to_principal,
    relates_to_report,
)
from api.deps import (
    GLOBAL_ROLES,
    Caller,
    caller_from_store,
    caller_without_store,
    get_caller,
    get_container,
    idempotency_of,
)
from domain.client import Client
from domain.deal import Deal
from domain.errors import NotFound
from domain.principal import Principal
from domain.services.clients import Loaded
from domain.services.disputes import DisputeView
from domain.services.reports import ReportView
from domain.services.uow import Context, Idempotency
from domain.unit import Unit
from domain.vocabulary import ROLES, Role
from projections.queries import Scope, team_members
from yingke.bootstrap import Container
from yingke.jobs import Job


@dataclass(frozen=True)
class Access:
    """Who may call an operation: each allowed role with its relation to the object."""

    relations: Mapping[str, Relation] | None  # None: public, no Authorization header

    @property
    def public(self) -> bool:
        return self.relations is None

    @property
    def roles(self) -> tuple[Role, ...] | None:
        if self.relations is None:
            return None
        return tuple(r for r in ROLES if r in self.relations)

    def relation(self, role: str) -> Relation | None:
        return None if self.relations is None else self.relations.get(role)


def allow(**relations: Relation) -> Access:
    unknown = set(relations) - set(ROLES)
    if unknown:
        raise ValueError(f"not roles: {sorted(unknown)}")
    return Access(dict(relations))


PUBLIC = Access(None)
ADMIN: dict[str, Relation] = {"admin": "any"}
# Auditors, BI services and admins read everything, read-only (admins also write).
READERS: dict[str, Relation] = {"auditor": "any", "service": "any", "admin": "any"}
# Acting on a buyer: the owner, the owner's supervisor, the project's managers.
CARERS: dict[str, Relation] = {**SERVERS, **ADMIN}
REVIEWERS: dict[str, Relation] = {"supervisor": "team", "manager": "project", **ADMIN}
STEPPERS: dict[str, Relation] = {**CARERS, "finance": "project"}
CASHIERS: dict[str, Relation] = {"finance": "project", "manager": "project", **ADMIN}
OWNERS: dict[str, Relation] = {"manager": "project", **ADMIN}
# Reading about buyers: the people serving them, and the read-everything roles.
BUYER_READERS: dict[str, Relation] = {**SERVERS, **READERS}
ANYONE: dict[str, Relation] = dict.fromkeys(ROLES, "any")
# Every role on its own projects (units, policy).
EVERYONE: dict[str, Relation] = {
    **{r: "project" for r in ROLES},
    **READERS,
}

TABLE: dict[str, Access] = {
    # health, receipts, metrics: no caller
    "healthz": PUBLIC,
    "readyz": PUBLIC,
    "metrics": PUBLIC,
    "keys": PUBLIC,
    "verify": PUBLIC,
    "views_status": allow(**ANYONE),
    # principals
    "register_principal": allow(**ADMIN),
    "get_principal": allow(**ADMIN),
    "update_principal": allow(**ADMIN),
    # The staff directory: a manager sees the principals of the manager's projects.
    "list_principals": allow(manager="project", **ADMIN),
    "revoke_principal": allow(**ADMIN),
    # policy and commission policy
    "set_policy": allow(**OWNERS),
    "get_policy": allow(
        **READERS,
        manager="project",
        supervisor="project",
        consultant="project",
        channel_agent="project",
    ),
    "set_commission_policy": allow(**OWNERS),
    "get_commission_policy": allow(
        **READERS, manager="project", supervisor="project", finance="project"
    ),
    # reports (报备) and visits (到访)
    "file_report": allow(channel_agent="partner", manager="project", service="any", admin="any"),
    "get_report": allow(**BUYER_READERS, channel_agent="partner"),
    "register_visit": allow(
        consultant="project", supervisor="project", manager="project", service="any", admin="any"
    ),
    # clients. Lookups are capped and audited; auditors and admins read by id, not phone.
    "lookup": allow(consultant="project", supervisor="project", manager="project", service="any"),
    # The full number and the notes: only the people serving the buyer.
    "contact": allow(**SERVERS),
    "follow_ups": allow(**SERVERS),
    "get_client": allow(**BUYER_READERS),
    "history": allow(**BUYER_READERS),
    "ownership": allow(**BUYER_READERS),
    # 证据包: the read-everything roles, the project's managers, and a consultant or
    # channel only as a party to a dispute over the buyer, which api/evidence_views.py
    # narrows to within the relation given here. The auditor's page (/audit, cookie
    # sign-in) serves the same bundle under this same entry.
    "evidence": allow(
        auditor="any", admin="any", manager="project", consultant="project", channel_agent="partner"
    ),
    "erase": allow(**ADMIN),
    "import_clients": allow(**OWNERS),
    # aftercare (跟进, 转客, 流失, 认领)
    "log_follow_up": allow(**CARERS),
    "change_grade": allow(**CARERS),
    "update_profile": allow(**CARERS),
    "transfer": allow(**OWNERS),
    "request_loss": allow(**CARERS),
    "approve_loss": allow(**REVIEWERS),
    "reject_loss": allow(**REVIEWERS),
    # A buyer in the pool is every project member's (api.access), so ``own`` admits it.
    "claim": allow(**CARERS),
    "approve_claim": allow(**REVIEWERS),
    "reject_claim": allow(**REVIEWERS),
    # disputes (申诉): any consultant of the project may claim a buyer is theirs; a
    # channel only through its own report.
    "open_dispute": allow(
        channel_agent="partner",
        consultant="project",
        supervisor="project",
        manager="project",
        admin="any",
    ),
    "get_dispute": allow(**BUYER_READERS, channel_agent="partner"),
    "rule": allow(**OWNERS),
    "appeal": allow(**CARERS, channel_agent="partner"),
    # consultants leaving (离职)
    "depart": allow(**OWNERS),
    "departure": allow(manager="project", supervisor="team", auditor="any", admin="any"),
    # units (房源)
    "import_units": allow(**OWNERS),
    "list_units": allow(**EVERYONE),
    "get_unit": allow(**EVERYONE),
    # deals
    "open_deal": allow(**CARERS),
    "list_deals": allow(**BUYER_READERS, finance="project", channel_agent="partner"),
    "get_deal": allow(**BUYER_READERS, finance="project"),
    "deposit": allow(**STEPPERS),
    "subscription": allow(**STEPPERS),
    "loan": allow(**STEPPERS),
    "approve_loan": allow(**STEPPERS),
    "refuse_loan": allow(**STEPPERS),
    "contract": allow(**STEPPERS),
    "filing": allow(**STEPPERS),
    "payment": allow(**CASHIERS),
    "delivery": allow(**STEPPERS),
    "certificate": allow(**STEPPERS),
    "cancel": allow(**CASHIERS),
    "swap": allow(**REVIEWERS),
    "rename": allow(**REVIEWERS),
    # deal and commission views
    "deal_pipeline": allow(**BUYER_READERS, finance="project"),
    # Per project and month: no buyer, deal or consultant in a row.
    "payments": allow(**READERS, supervisor="project", manager="project", finance="project"),
    "commissions": allow(**BUYER_READERS, finance="project", channel_agent="partner"),
    "commission_entries": allow(**BUYER_READERS, finance="project", channel_agent="partner"),
    "signing_forecast": allow(**BUYER_READERS, finance="project"),
    # read views
    "list_clients": allow(**BUYER_READERS, channel_agent="partner"),
    "list_reports": allow(**BUYER_READERS, channel_agent="partner"),
    "list_tasks": allow(**BUYER_READERS),
    # 待激活 wake-ups and stalled negotiations (the policy's rules): owner, team, managers
    "list_rule_tasks": allow(**BUYER_READERS),
    # Per project, partner and day: no buyer or consultant in a row.
    "funnel": allow(**READERS, supervisor="project", manager="project", channel_agent="partner"),
    "channels": allow(**READERS, supervisor="project", manager="project", channel_agent="partner"),
    "consultants": allow(**BUYER_READERS),
    "protection_board": allow(**BUYER_READERS),
    "lost_reasons": allow(**READERS, supervisor="project", manager="project"),
    "pool": allow(**READERS, supervisor="project", manager="project"),
    # the working day: an approver's inbox, a consultant's day
    "inbox": allow(**REVIEWERS),
    "my_day": allow(**SERVERS),
    # dashboards: a consultant reads their own funnel, supervisors and managers the
    # project's (rates and counts, no buyer in a row)
    "conversion": allow(**BUYER_READERS),
    "summary": allow(**READERS, supervisor="project", manager="project"),
    # what-if replays (ADR 0059): auditors and the project's managers; the job carries its
    # project, checked again when anyone reads it
    "what_if": allow(auditor="any", manager="project", admin="any"),
    "get_job": allow(auditor="any", manager="project", admin="any"),
}

# What only the people serving a buyer read: a buyer in the public pool, which ``own`` and
# ``team`` otherwise admit (to claim it, to read it masked), is served by nobody but the
# project's managers until it is claimed (api.access).
SERVED_ONLY: frozenset[str] = frozenset({"contact", "follow_ups"})
# Parts of an answer, not whole operations: who sees them inside what they may read.
# Free text typed about a buyer (reasons, comments, source_detail; ADR 0045): opened for
# the people serving the buyer and auditors, by relation as in TABLE; and every role
# reads the words it wrote itself (api.free_text). Everyone else sees ``[sealed]``.
READS_NOTES: dict[str, Relation] = {**SERVERS, "auditor": "any"}
READS_OWN_WORDS: tuple[Role, ...] = ROLES
SEES_DISCLOSURES: tuple[Role, ...] = ("manager", "auditor", "admin")  # ContactDisclosed
# A buyer's evidence bundle whole (a manager's only within the manager's projects); the
# other roles the ``evidence`` entry allows see it only as a party to a dispute.
SEES_WHOLE_BUNDLE: tuple[Role, ...] = ("auditor", "admin", "manager")
SEES_WHOLE_DISPUTE: tuple[Role, ...] = ("supervisor", "manager", "auditor", "service", "admin")
# The worker loops' error text and process identity (host:pid) in /v1/views/status: a
# driver's or broker's error can carry addresses and ids, not for channels or sales staff.
SEES_LOOP_DETAIL: tuple[Role, ...] = ("admin", "auditor", "manager")
# These roles act only as themselves: a consultant for itself, a channel agent as itself
# for its own partner. The others may file for someone (a manager for a consultant).
ACTS_AS_ITSELF: tuple[Role, ...] = ("consultant", "channel_agent")


def access(operation: str) -> Access:
    """The table's entry; a route missing from it is a programming error, caught by tests."""
    return TABLE[operation]


def operation_of(request: Request) -> str | None:
    """The operation's key, or None for the undocumented pages (``/docs``, ``/redoc``)."""
    route = request.scope.get("route")
    if route is not None and not getattr(route, "include_in_schema", True):
        return None
    endpoint = getattr(route, "endpoint", None) or request.scope["endpoint"]
    name: str = endpoint.__name__
    return name


def _hidden(kind: str) -> HTTPException:
    # One answer for "no such object" and "not yours": the id reveals nothing.
    return HTTPException(404, f"{kind} not found")


@dataclass(frozen=True)
class Guard:
    """The caller with the relation the table gives its role for this operation: every
    check an operation makes on an object goes through here."""

    caller: Caller
    relation: Relation
    app: Container
    # False for SERVED_ONLY operations: a buyer in the pool does not count as own or team's.
    pool: bool = True
    # What the path named, judged once per request and handed to the route.
    seen: dict[tuple[str, object], object] = field(default_factory=dict, compare=False)

    def project(self, project_id: str) -> None:
        if not self.caller.covers(project_id):
            raise HTTPException(403, f"{self.caller.id} is not granted this project")

    def client(self, client_id: uuid.UUID) -> Client:
        return self.loaded_client(client_id).client

    def loaded_client(self, client_id: uuid.UUID) -> Loaded:
        """The buyer with the events it was folded from: a route that needs the stream
        too (ownership as of an instant) reads it once, here."""
        known = self.seen.get(("client", client_id))
        if isinstance(known, Loaded):
            return known
        loaded = self.app.clients.loaded(client_id)
        if loaded is None or not relates(
            self.app, self.caller, self.relation, loaded.client, pool=self.pool
        ):
            raise _hidden("client")
        self.seen[("client", client_id)] = loaded
        return loaded

    def deal(self, deal_id: uuid.UUID) -> Deal:
        known = self.seen.get(("deal", deal_id))
        if isinstance(known, Deal):
            return known
        try:
            deal = self.app.deals.deal_state(deal_id)
        except NotFound:
            raise _hidden("deal") from None
        if not relates_to_deal(self.app, self.caller, self.relation, deal, self.buyer):
            raise _hidden("deal")
        self.seen[("deal", deal_id)] = deal
        return deal

    def buyer(self, client_id: uuid.UUID) -> Client | None:
        """A deal's buyer, read once per request (the check of own or team staff, then
        the route's judgement of who reads the notes); no access check of its own."""
        key = ("buyer", client_id)
        if key not in self.seen:
            self.seen[key] = self.app.clients.find(client_id)
        found = self.seen[key]
        return found if isinstance(found, Client) else None

    def dispute(self, dispute_id: str) -> DisputeView:
        known = self.seen.get(("dispute", dispute_id))
        if isinstance(known, DisputeView):
            return known
        try:
            view = self.app.disputes.dispute(dispute_id)
        except NotFound:
            raise _hidden("dispute") from None
        if not relates_to_dispute(self.app, self.caller, self.relation, view):
            raise _hidden("dispute")
        self.seen[("dispute", dispute_id)] = view
        return view

    def report(self, report_id: str) -> ReportView:
        known = self.seen.get(("report", report_id))
        if isinstance(known, ReportView):
            return known
        try:
            view = self.app.reports.report(report_id)
        except NotFound:
            raise _hidden("report") from None
        if not relates_to_report(self.app, self.caller, self.relation, view):
            raise _hidden("report")
        self.seen[("report", report_id)] = view
        return view

    def consultant(self, consultant_id: str) -> Principal:
        principal = self.app.principals.principal(consultant_id)
        if principal is None or not relates_to_principal(
            self.app, self.caller, self.relation, principal
        ):
            raise _hidden("consultant")
        return principal

    def unit(self, project_id: str, unit_id: uuid.UUID) -> Unit:
        self.project(project_id)
        try:
            unit = self.app.units.unit(unit_id)
        except NotFound:
            raise _hidden("unit") from None
        if unit.project_id != project_id:
            raise _hidden("unit")
        return unit

    def for_consultant(self, consultant_id: str) -> None:
        """A supervisor decides for their own team: a buyer in the pool is every team's,
        but the consultant whose claim it is must be theirs. Answered like a foreign
        buyer."""
        if self.relation == "team" and not in_team(self.app, self.caller, consultant_id):
            raise _hidden("client")

    def acts_for(
        self,
        *,
        consultant_id: str | None = None,
        partner_id: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        """Refuse a consultant or channel agent naming someone else as the actor, and a
        supervisor naming a consultant outside their team."""
        caller = self.caller
        if caller.role == "supervisor" and consultant_id is not None:
            if not in_team(self.app, caller, consultant_id):
                raise HTTPException(403, "a supervisor acts only for their own team")
            return
        if caller.role not in ACTS_AS_ITSELF:
            return
        if caller.role == "consultant" and consultant_id not in (None, caller.id):
            raise HTTPException(403, "a consultant acts only for themselves")
        if caller.role == "channel_agent" and (
            partner_id not in (None, caller.partner_id) or agent_id not in (None, caller.id)
        ):
            raise HTTPException(403, "a channel agent acts only as itself, for its own partner")

    def scope(self) -> Scope:
        """What a list or view shows this caller: the relation applied to rows."""
        caller, relation = self.caller, self.relation
        if relation == "any":
            return Scope()
        unbounded = caller.role in GLOBAL_ROLES or (
            caller.role == "channel_agent" and not caller.project_ids
        )
        projects = None if unbounded else caller.project_ids
        if relation == "partner":
            return Scope(project_ids=projects, partner_id=caller.partner_id)
        if relation == "own":
            return Scope(project_ids=projects, consultant_ids=(caller.id,))
        if relation == "team" and caller.team_id is not None:
            members = team_members(self.app.views, caller.team_id)
            return Scope(project_ids=projects, consultant_ids=(caller.id, *members))
        return Scope(project_ids=projects)

    def check_path(self, params: Mapping[str, str]) -> None:
        """Judge the objects the path names, before anything else of the request."""
        if "project_id" in params:
            unit_id = _as_uuid(params.get("unit_id"))
            if unit_id is not None:
                self.unit(params["project_id"], unit_id)
            else:
                self.project(params["project_id"])
        if (client_id := _as_uuid(params.get("client_id"))) is not None:
            self.client(client_id)
        if (deal_id := _as_uuid(params.get("deal_id"))) is not None:
            self.deal(deal_id)
        if "dispute_id" in params:
            self.dispute(params["dispute_id"])
        if "report_id" in params:
            self.report(params["report_id"])
        if "consultant_id" in params:
            self.consultant(params["consultant_id"])
        if "job_id" in params:
            self.job(params["job_id"])

    def job(self, job_id: str) -> Job:
        """A background job (a what-if replay) belongs to the project it replays."""
        known = self.seen.get(("job", job_id))
        if isinstance(known, Job):
            return known
        job = self.app.jobs.get(job_id)
        if job is None:
            raise _hidden("job")
        if self.relation != "any" and not self.caller.covers(job.project_id):
            raise _hidden("job")
        self.seen[("job", job_id)] = job
        return job


# The path parameters that name an object ``Guard.check_path`` judges.
PATH_OBJECTS = (
    "project_id",
    "client_id",
    "deal_id",
    "dispute_id",
    "report_id",
    "consultant_id",
    "job_id",
)


# Those ``check_path`` loads from the store (a project only with a unit).
LOADED_OBJECTS = tuple(name for name in PATH_OBJECTS if name != "project_id")


def _as_uuid(value: str | None) -> uuid.UUID | None:
    """A malformed id is left to request validation (422, whoever asks)."""
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def enforce_access(request: Request) -> None:
    """Apply the table: the caller's role, then its relation to the objects in the path."""
    operation = operation_of(request)
    if operation is None:
        return
    entry = access(operation)
    if entry.public:
        return
    params = request.path_params
    loads = any(name in params for name in LOADED_OBJECTS) or (
        "project_id" in params and "unit_id" in params
    )
    if not loads and "project_id" not in params and _admits_in_its_hop(request):
        authorization = request.headers.get("authorization")
        caller = caller_without_store(get_container(request), authorization)
        if caller is None:
            # The key must be looked up: the route settles it first thing in the one hop
            # to a worker thread it makes anyway (``Admission``).
            assert authorization is not None
            request.state.admission = Admission(request, operation, entry, authorization)
            return
        request.state.caller = caller
    # The endpoint's own ``CallerDep`` reuses this (kept on request.state), rather than
    # authenticating twice.
    caller = await get_caller(request, request.headers.get("authorization"))
    guard = _guard(request, operation, entry, caller)
    if loads:
        # Loading the objects reads the store: off the event loop.
        await run_in_threadpool(guard.check_path, params)
    elif "project_id" in params:
        # A project alone is judged from the caller's grants: no thread needed.
        guard.check_path(params)


def _guard(request: Request, operation: str, entry: Access, caller: Caller) -> Guard:
    relation = entry.relation(caller.role)
    if relation is None:
        raise HTTPException(403, f"role {caller.role} may not do this")
    guard = Guard(caller, relation, get_container(request), pool=operation not in SERVED_ONLY)
    request.state.guard = guard
    return guard


def _admits_in_its_hop(request: Request) -> bool:
    """Whether the route takes an ``AdmissionDep`` (and so settles access itself)."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    return dependant is not None and any(d.call is get_admission for d in dependant.dependencies)


class Admission:
    """Access owed to an operation whose route hops to a worker thread once anyway: the
    key's lookup reads the store, so it waits for that hop instead of making one of its
    own. ``settle`` runs first in the route, before anything else it does; an error
    answered before the route ran settles it first (``api.problems``), so a request
    whose key fails is refused 401 or 403 whatever else is wrong with it, as when
    ``enforce_access`` authenticated every request on the spot."""

    def __init__(self, request: Request, operation: str, entry: Access, authorization: str):
        self._request = request
        self._operation = operation
        self._entry = entry
        self._authorization = authorization
        self._guard: Guard | None = None
        self._refused: HTTPException | None = None
        self.idempotency: Idempotency | None = None

    @property
    def pending(self) -> bool:
        return self._guard is None and self._refused is None

    def settle(self) -> Guard:
        """Authenticate and apply the table (401, 403); reads the store."""
        if self._refused is not None:
            raise self._refused
        if self._guard is None:
            request = self._request
            try:
                caller = caller_from_store(get_container(request), self._authorization)
                self._guard = _guard(request, self._operation, self._entry, caller)
            except HTTPException as refused:
                self._refused = refused
                raise
            request.state.caller = caller
        return self._guard

    def context(self) -> tuple[Guard, Context]:
        """``settle``, with the command context of the caller it found."""
        guard = self.settle()
        request_id: str = self._request.state.request_id
        return guard, Context(guard.caller.actor, request_id, self.idempotency)


class Admitted(Admission):
    """An admission settled on the event loop (the admin key, needing no store)."""

    def __init__(self, request: Request, guard: Guard) -> None:
        super().__init__(request, "", PUBLIC, "")
        self._guard = guard


async def get_admission(request: Request) -> Admission:
    """The route's admission. It reads ``Authorization`` and ``Idempotency-Key`` from the
    headers itself (``api.openapi`` documents them): as declared parameters FastAPI would
    validate each on every request, on the event loop."""
    admission: Admission | None = getattr(request.state, "admission", None)
    if admission is None:
        guard: Guard | None = getattr(request.state, "guard", None)
        if guard is None:
            raise RuntimeError("enforce_access did not run for this route")
        admission = Admitted(request, guard)
    admission.idempotency = await idempotency_of(request, request.headers.get("idempotency-key"))
    return admission


async def get_guard(request: Request, caller: Annotated[Caller, Depends(get_caller)]) -> Guard:
    """The request's guard; depending on ``get_caller`` documents the bearer scheme."""
    guard: Guard | None = getattr(request.state, "guard", None)
    if guard is None:
        raise RuntimeError("enforce_access did not run for this route")
    return guard


def get_scope(guard: Annotated[Guard, Depends(get_guard)]) -> Scope:
    return guard.scope()


GuardDep = Annotated[Guard, Depends(get_guard)]
ScopeDep = Annotated[Scope, Depends(get_scope)]
# For a route that hops to a worker thread once: it calls ``admission.context()`` (or
# ``settle()``) there first, and enforce_access leaves the key's lookup to it.
AdmissionDep = Annotated[Admission, Depends(get_admission)]


# ------------------------------------------------------------------ the README's table

README_START = "<!-- roles:start (generated by python -m api.authorization) -->"
README_END = "<!-- roles:end -->"


def readme_table(paths: Mapping[str, str]) -> str:
    """The role × operation table: each cell the relation the role needs, or blank.
    ``paths`` maps an operation to its ``METHOD /path``."""
    lines = [
        "| operation | " + " | ".join(f"`{r}`" for r in ROLES) + " |",
        "|---|" + "---|" * len(ROLES),
    ]

    def by_path(name: str) -> tuple[str, str]:
        method, _, path = paths.get(name, name).partition(" ")
        return path, method

    for name in sorted(TABLE, key=by_path):
        entry = TABLE[name]
        if entry.public:
            cells = ["public"] * len(ROLES)
        else:
            cells = [entry.relation(role) or "" for role in ROLES]
        lines.append(f"| `{paths.get(name, name)}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def readme_section(paths: Mapping[str, str]) -> str:
    return f"{README_START}\n{readme_table(paths)}\n{README_END}"


def operation_paths() -> dict[str, str]:
    """Operation name → ``METHOD /path`` from the application's routes."""
    from api.app import assembled_routes

    return {name: f"{method} {path}" for name, method, path in assembled_routes()}


def rewrite_readme(readme: Path) -> bool:
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    updated = text[:start] + readme_section(operation_paths()) + text[end:]
    if updated != text:
        readme.write_text(updated, encoding="utf-8")
    return updated != text


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("README.md")
    print("rewritten" if rewrite_readme(target) else "up to date")
