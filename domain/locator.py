"""Where a report lives: a tiny stream per report id, written with the report itself."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.values import NAMESPACE


def locator_id(report_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"report:{report_id}")


class ReportLocator(Aggregate):
    class ReportLocated(Aggregate.Created):
        report_id: str
        stream_id: uuid.UUID
        project_id: str
        partner_id: str
        actor: dict[str, str]
        correlation_id: str

    def __init__(self, report_id: str, stream_id: uuid.UUID, project_id: str, partner_id: str):
        self.report_id = report_id
        self.stream_id = stream_id
        self.project_id = project_id
        self.partner_id = partner_id

    @classmethod
    def place(
        cls,
        report_id: str,
        stream_id: uuid.UUID,
        project_id: str,
        partner_id: str,
        at: datetime,
        trace: dict[str, Any],
    ) -> ReportLocator:
        return cls._create(
            cls.ReportLocated,
            id=locator_id(report_id),
            report_id=report_id,
            stream_id=stream_id,
            project_id=project_id,
            partner_id=partner_id,
            timestamp=at,
            **trace,
        )


def dispute_locator_id(dispute_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"dispute:{dispute_id}")


class DisputeLocator(Aggregate):
    """Which client a dispute (申诉) belongs to: disputes live in the client's stream."""

    class DisputeLocated(Aggregate.Created):
        dispute_id: str
        client_id: uuid.UUID
        actor: dict[str, str]
        correlation_id: str

    def __init__(self, dispute_id: str, client_id: uuid.UUID) -> None:
        self.dispute_id = dispute_id
        self.client_id = client_id

    @classmethod
    def place(
        cls, dispute_id: str, client_id: uuid.UUID, at: datetime, trace: dict[str, Any]
    ) -> DisputeLocator:
        return cls._create(
            cls.DisputeLocated,
            id=dispute_locator_id(dispute_id),
            dispute_id=dispute_id,
            client_id=client_id,
            timestamp=at,
            **trace,
        )
