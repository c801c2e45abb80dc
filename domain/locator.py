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
