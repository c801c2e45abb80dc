"""A consultant's departure (离职): their key stops at once, their buyers move on.

The move is one operation over many Client streams, so it is recorded as a process of
its own: started (with the key revoked in the same transaction), each buyer moved, then
completed. Re-running it resumes: buyers already moved are skipped by their own streams.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.values import NAMESPACE


def departure_id(consultant_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"departure:{consultant_id}")


class Departure(Aggregate):
    class Event(Aggregate.Event):
        actor: dict[str, str]
        correlation_id: str

    class DepartureStarted(Aggregate.Created):
        consultant_id: str
        successor_id: str | None
        project_ids: list[str]

    class ClientMoved(Aggregate.Event):
        consultant_id: str
        client_id: uuid.UUID
        outcome: str  # transferred | pool | skipped

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Departure)
            aggregate.moved[str(self.client_id)] = self.outcome

    class DepartureCompleted(Aggregate.Event):
        consultant_id: str
        moved: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Departure)
            aggregate.completed = True

    def __init__(self, consultant_id: str, successor_id: str | None, project_ids: list[str]):
        self.consultant_id = consultant_id
        self.successor_id = successor_id
        self.project_ids = list(project_ids)
        self.moved: dict[str, str] = {}
        self.completed = False

    @classmethod
    def start(
        cls,
        consultant_id: str,
        successor_id: str | None,
        project_ids: list[str],
        at: datetime,
        trace: dict[str, Any],
    ) -> Departure:
        return cls._create(
            cls.DepartureStarted,
            id=departure_id(consultant_id),
            consultant_id=consultant_id,
            successor_id=successor_id,
            project_ids=project_ids,
            timestamp=at,
            **trace,
        )

    def record_move(
        self, client_id: uuid.UUID, outcome: str, at: datetime, trace: dict[str, Any]
    ) -> None:
        self.trigger_event(
            self.ClientMoved,
            consultant_id=self.consultant_id,
            client_id=client_id,
            outcome=outcome,
            timestamp=at,
            **trace,
        )

    def complete(self, at: datetime, trace: dict[str, Any]) -> None:
        if not self.completed:
            self.trigger_event(
                self.DepartureCompleted,
                consultant_id=self.consultant_id,
                moved=len(self.moved),
                timestamp=at,
                **trace,
            )

    @property
    def status(self) -> str:
        return "completed" if self.completed else "in_progress"
