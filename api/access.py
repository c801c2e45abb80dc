"""How a caller relates to the objects an operation names.

The relations the authorization table (``api.authorization``) declares, per role:

- ``any``: no tie needed;
- ``project``: the object's project (楼盘) is granted to the caller;
- ``team``: the buyer's owner is the supervisor or in the supervisor's team (a supervisor
  without a team supervises the projects they are granted);
- ``own``: the caller is the owning consultant (of the buyer, of the deal, a party to the
  dispute);
- ``partner``: the object is the channel's own (its reports, the buyers it reported, its
  disputes, deals and commission).

Every relation except ``any`` includes the project. A buyer in the public pool (公海池)
has no owner: it belongs to everyone working its project, so ``own`` and ``team`` admit
it (that is what lets a consultant claim it, and read it masked first). Nobody serves it,
though: what only the people serving a buyer read (the full contact, the notes, the
profile, free text opened) is the project's managers' alone until someone claims it
(``pool=False``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from api.deps import Caller
from domain.client import Client
from domain.deal import Deal
from domain.principal import Principal
from domain.services.disputes import DisputeView
from domain.services.reports import ReportView
from yingke.bootstrap import Container

Relation = Literal["any", "project", "team", "own", "partner"]
RELATIONS: tuple[Relation, ...] = ("any", "project", "team", "own", "partner")
Rule = Mapping[str, Relation]

# Who serves a buyer: their consultant, that consultant's supervisor, the managers. They
# read the full contact, the notes and the profile; also the test for sealed free text.
SERVERS: Rule = {"consultant": "own", "supervisor": "team", "manager": "project"}


def in_team(app: Container, caller: Caller, consultant_id: str | None) -> bool:
    """Whether ``consultant_id`` is the caller or in the caller's team."""
    if consultant_id is None:
        return False
    if consultant_id == caller.id or caller.team_id is None:
        # A supervisor without a team supervises the project (as the list scopes do).
        return True
    principal = app.principals.principal(consultant_id)
    return principal is not None and principal.team_id == caller.team_id


def _people(
    app: Container, caller: Caller, relation: Relation, consultants: Iterable[str | None]
) -> bool:
    """``own`` or ``team`` judged on the consultants an object concerns."""
    named = [c for c in consultants if c]
    if relation == "own":
        return caller.id in named
    if relation == "team":
        return any(in_team(app, caller, c) for c in named)
    return False


def relates(
    app: Container, caller: Caller, relation: Relation, client: Client, *, pool: bool = True
) -> bool:
    """Whether ``caller`` relates to the buyer as ``relation`` asks. ``pool=False``: a
    buyer in the pool is nobody's own nor any team's (for what only its servers read)."""
    if relation == "any":
        return True
    if not caller.covers(client.project_id):
        return False
    if relation == "project":
        return True
    if relation == "partner":
        return any(r.partner_id == caller.partner_id for r in client.reports.values())
    if client.owner is None:
        return pool and client.in_pool
    return _people(app, caller, relation, [client.owner.consultant_id])


def may(app: Container, caller: Caller, rule: Rule, client: Client) -> bool:
    """Whether ``caller`` passes ``rule`` for ``client`` (for parts of an answer): e.g.
    ``may(app, caller, SERVERS, client)``, does this caller serve this buyer? Nobody but
    the project's managers serves a buyer in the pool."""
    relation = rule.get(caller.role)
    return relation is not None and relates(app, caller, relation, client, pool=False)


def relates_to_deal(
    app: Container,
    caller: Caller,
    relation: Relation,
    deal: Deal,
    buyer: Callable[[uuid.UUID], Client | None] | None = None,
) -> bool:
    """``buyer``: how to find the deal's buyer (a request's guard keeps what it read)."""
    if relation == "any":
        return True
    if not caller.covers(deal.project_id):
        return False
    if relation == "project":
        return True
    if relation == "partner":
        return deal.attribution.partner_id == caller.partner_id
    client = (buyer or app.clients.find)(deal.client_id)
    owner = client.owner.consultant_id if client and client.owner else None
    return _people(app, caller, relation, [deal.attribution.consultant_id, owner])


def dispute_parties(view: DisputeView) -> list[str | None]:
    """The consultants a dispute concerns: the claimant, the owner then and now."""
    dispute = view.dispute
    owner = view.client.owner.consultant_id if view.client.owner else None
    claimant = dispute.claimant_id if dispute.claimant_kind == "consultant" else None
    return [claimant, dispute.owner_at_opening.get("consultant_id"), owner]


def relates_to_dispute(
    app: Container, caller: Caller, relation: Relation, view: DisputeView
) -> bool:
    if relation == "any":
        return True
    if not caller.covers(view.client.project_id):
        return False
    if relation == "project":
        return True
    if relation == "partner":
        return (
            view.dispute.claimant_kind == "channel"
            and view.dispute.claimant_id == caller.partner_id
        )
    return _people(app, caller, relation, dispute_parties(view))


def relates_to_report(app: Container, caller: Caller, relation: Relation, view: ReportView) -> bool:
    if relation == "any":
        return True
    if not caller.covers(view.project_id):
        return False
    if relation == "project":
        return True
    if relation == "partner":
        return view.report.partner_id == caller.partner_id
    # Staff who see only some buyers see the reports about those buyers.
    client = view.buyer
    if client is None and view.client_id:
        client = app.clients.find(_uuid(view.client_id))
    return client is not None and relates(app, caller, relation, client)


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def relates_to_principal(
    app: Container, caller: Caller, relation: Relation, principal: Principal
) -> bool:
    """A consultant as the object (a departure): their projects, their team."""
    if relation == "any":
        return True
    if not principal.project_ids or not all(caller.covers(p) for p in principal.project_ids):
        return False
    if relation == "project":
        return True
    if relation == "team":
        return in_team(app, caller, principal.principal_id)
    if relation == "own":
        return principal.principal_id == caller.id
    return False
