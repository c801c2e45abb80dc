"""One access policy: for every operation, which roles may call it and how the caller
must relate to the object it names.

Relations: ``any`` (no tie needed), ``project`` (the object's project is granted to the
caller), ``team`` (the buyer's owner is the supervisor or in the supervisor's team),
``own`` (the caller owns the buyer), ``partner`` (a channel's own reports and outcomes).
A role missing from an operation is refused with 403; a listed role whose relation does
not hold gets the same 404 as a missing object, so ids reveal nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request

from api.deps import Caller, get_caller, get_container
from domain.client import Client
from domain.errors import NotFound
from yingke.bootstrap import Container

Relation = Literal["any", "project", "team", "own", "partner"]
Rule = dict[str, Relation]

# Who serves a buyer: their consultant, that consultant's supervisor, the managers.
SERVERS: Rule = {"consultant": "own", "supervisor": "team", "manager": "project"}

POLICY: dict[str, Rule] = {
    "POST /v1/clients/lookup": {
        "consultant": "project",
        "supervisor": "project",
        "manager": "project",
        "service": "project",
    },
    "GET /v1/clients/{client_id}/contact": SERVERS,
    "GET /v1/clients/{client_id}/follow-ups": SERVERS,
}


def operation_of(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


@dataclass(frozen=True)
class Access:
    """The caller, the operation's rule, and the checks that need the object."""

    caller: Caller
    relation: Relation
    app: Container

    def project(self, project_id: str) -> None:
        if not self.caller.covers(project_id):
            raise HTTPException(403, f"{self.caller.id} is not granted project {project_id}")

    def client(self, client_id: uuid.UUID) -> Client:
        """The buyer, if the caller relates to them as the rule asks; else 404."""
        try:
            client = self.app.clients.client(client_id)
        except NotFound:
            raise HTTPException(404, "client not found") from None
        if not self.relates_to(client):
            raise HTTPException(404, "client not found")
        return client

    def relates_to(self, client: Client) -> bool:
        return relates(self.app, self.caller, self.relation, client)


def relates(app: Container, caller: Caller, relation: Relation, client: Client) -> bool:
    if relation == "any":
        return True
    if not caller.covers(client.project_id):
        return False
    owner = client.owner.consultant_id if client.owner is not None else None
    if relation == "project":
        return True
    if relation == "own":
        return owner == caller.id
    if relation == "team":
        if owner is None:
            return False
        if owner == caller.id or caller.team_id is None:
            # A supervisor without a team supervises the project (as the list scopes do).
            return True
        principal = app.principals.principal(owner)
        return principal is not None and principal.team_id == caller.team_id
    if relation == "partner":
        return any(r.partner_id == caller.partner_id for r in client.reports.values())
    return False


def may(app: Container, caller: Caller, rule: Rule, client: Client) -> bool:
    """Whether ``caller`` passes ``rule`` for ``client`` (for parts of an answer)."""
    relation = rule.get(caller.role)
    return relation is not None and relates(app, caller, relation, client)


def get_access(
    request: Request,
    caller: Annotated[Caller, Depends(get_caller)],
    app: Annotated[Container, Depends(get_container)],
) -> Access:
    operation = operation_of(request)
    rule = POLICY.get(operation)
    if rule is None:
        raise HTTPException(403, f"{operation} is not in the access policy")
    relation = rule.get(caller.role)
    if relation is None:
        raise HTTPException(403, f"role {caller.role} may not do this")
    return Access(caller, relation, app)


AccessDep = Annotated[Access, Depends(get_access)]
