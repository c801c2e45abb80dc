"""The monthly cap on pool claims (捞客) per consultant: a consistency boundary of its own.

Claims for different buyers touch different Client streams, so only a stream per
consultant, project and month can make N concurrent claims count to N: every claim
saves the client and this quota in one transaction, and the loser of a race retries.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from eventsourcing.domain import Aggregate

from domain.errors import Conflict
from domain.values import NAMESPACE

# Sales offices count "this month" on China Standard Time (UTC+8, no daylight saving).
CHINA = timezone(timedelta(hours=8), "CST")


def month_of(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m")


def quota_id(project_id: str, consultant_id: str, month: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"claim-quota:{project_id}:{consultant_id}:{month}")


class ClaimQuota(Aggregate):
    class Event(Aggregate.Event):
        actor: dict[str, str]
        correlation_id: str

    class QuotaOpened(Aggregate.Created):
        project_id: str
        consultant_id: str
        month: str

    class ClaimCounted(Aggregate.Event):
        claim_id: str
        client_id: uuid.UUID
        cap: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClaimQuota)
            aggregate.counted[self.claim_id] = self.client_id

    class ClaimUncounted(Aggregate.Event):
        """A pending claim was refused: it no longer uses the month's allowance."""

        claim_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, ClaimQuota)
            aggregate.counted.pop(self.claim_id, None)

    def __init__(self, project_id: str, consultant_id: str, month: str) -> None:
        self.project_id = project_id
        self.consultant_id = consultant_id
        self.month = month
        self.counted: dict[str, uuid.UUID] = {}

    @classmethod
    def open(
        cls, project_id: str, consultant_id: str, at: datetime, trace: dict[str, Any]
    ) -> ClaimQuota:
        month = month_of(at)
        return cls._create(
            cls.QuotaOpened,
            id=quota_id(project_id, consultant_id, month),
            project_id=project_id,
            consultant_id=consultant_id,
            month=month,
            timestamp=at,
            **trace,
        )

    @property
    def used(self) -> int:
        return len(self.counted)

    def count(
        self,
        claim_id: str,
        client_id: uuid.UUID,
        cap: int,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        if self.used >= cap:
            raise Conflict(
                f"{self.consultant_id} has used all {cap} pool claims for {self.month}",
                code="claim_cap_reached",
            )
        self.trigger_event(
            self.ClaimCounted,
            claim_id=claim_id,
            client_id=client_id,
            cap=cap,
            timestamp=at,
            **trace,
        )

    def uncount(self, claim_id: str, at: datetime, trace: dict[str, Any]) -> None:
        if claim_id in self.counted:
            self.trigger_event(self.ClaimUncounted, claim_id=claim_id, timestamp=at, **trace)
