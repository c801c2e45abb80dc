"""Idempotency records, saved in the same transaction as the command they answer.

Two requests racing with one key both try to create the record; the loser's save fails
with a conflict, its command is retried, and the retry finds the winner's answer.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.values import NAMESPACE


def record_id(principal_id: str, key: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"idempotency:{principal_id}:{key}")


class IdempotencyRecord(Aggregate):
    class ResponseRecorded(Aggregate.Created):
        fingerprint: str
        status_code: int
        body: dict[str, Any]
        actor: dict[str, str]
        correlation_id: str

    def __init__(self, fingerprint: str, status_code: int, body: dict[str, Any]) -> None:
        self.fingerprint = fingerprint
        self.status_code = status_code
        self.body = body

    @classmethod
    def record(
        cls,
        rid: uuid.UUID,
        fingerprint: str,
        status_code: int,
        body: dict[str, Any],
        at: datetime,
        trace: dict[str, Any],
    ) -> IdempotencyRecord:
        return cls._create(
            cls.ResponseRecorded,
            id=rid,
            fingerprint=fingerprint,
            status_code=status_code,
            body=body,
            timestamp=at,
            **trace,
        )
