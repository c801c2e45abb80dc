"""Departures (离职): revoke the leaver, then move each of their buyers, one by one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.departure import Departure, departure_id
from domain.errors import Conflict, InvalidInput, NotFound
from domain.principal import Principal, principal_uuid
from domain.services.clients import Clients
from domain.services.policies import Policies
from domain.services.principals import VISIT_ROLES, Principals
from domain.services.uow import Context, Done, UnitOfWork


@dataclass(frozen=True)
class Move:
    client_id: uuid.UUID
    outcome: str  # "transferred", "pool" or "skipped"


class Departures:
    def __init__(
        self, uow: UnitOfWork, policies: Policies, principals: Principals, clients: Clients
    ) -> None:
        self.uow = uow
        self.policies = policies
        self.principals = principals
        self.clients = clients

    def start_departure(
        self, ctx: Context, consultant_id: str, successor_id: str | None
    ) -> Done[Departure]:
        """Revoke the leaver's key and open the move, atomically; a repeat resumes."""

        def decide(now: datetime) -> tuple[list[Any], Departure]:
            # Loaded afresh, not the shared copy: this command revokes the leaver.
            leaver = self.uow.find(Principal, principal_uuid(consultant_id))
            if leaver is None or leaver.role not in VISIT_ROLES:
                raise NotFound(f"no consultant {consultant_id}")
            existing = self.uow.find(Departure, departure_id(consultant_id))
            if existing is not None:
                if existing.successor_id != successor_id:
                    raise Conflict(
                        "this departure was started with another successor",
                        code="departure_differs",
                    )
                return [], existing
            if successor_id is not None:
                if successor_id == consultant_id:
                    raise InvalidInput("successor_id", "must be someone other than the leaver")
                for project_id in leaver.project_ids:
                    self.principals.check_consultant(successor_id, project_id, "successor_id")
            departure = Departure.start(
                consultant_id, successor_id, leaver.project_ids, now, ctx.trace
            )
            leaver.revoke("departed", now, ctx.trace)
            return [departure, leaver], departure

        return self.uow.run(ctx, decide)

    def departure(self, consultant_id: str) -> Departure:
        return self.uow.get(Departure, departure_id(consultant_id), "departure")

    def move_departing_client(
        self, ctx: Context, consultant_id: str, client_id: uuid.UUID
    ) -> Done[Move]:
        def decide(now: datetime) -> tuple[list[Any], Move]:
            departure = self.departure(consultant_id)
            done = departure.moved.get(str(client_id))
            if done is not None and done != "skipped":
                # Moved already, by the request or the deadline processor running the same
                # departure: a "skipped" now would overwrite the move that happened.
                return [], Move(client_id, done)
            client = self.clients.client(client_id)
            policy = self.policies.policy_for(client.project_id)
            moved = client.depart(consultant_id, departure.successor_id, policy, now, ctx.trace)
            outcome = (
                "skipped"
                if not moved
                else ("pool" if departure.successor_id is None else "transferred")
            )
            departure.record_move(client.id, outcome, now, ctx.trace)
            return [client, departure], Move(client.id, outcome)

        return self.uow.run(ctx, decide)

    def complete_departure(self, ctx: Context, consultant_id: str) -> Done[Departure]:
        def decide(now: datetime) -> tuple[list[Any], Departure]:
            departure = self.departure(consultant_id)
            departure.complete(now, ctx.trace)
            return [departure], departure

        return self.uow.run(ctx, decide)
