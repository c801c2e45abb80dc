"""Masked reports (隐号报备) waiting for a visit to say which buyer they meant.

A 前三后四 pattern matches 10^4 numbers, so a masked report cannot join a Client stream
when filed. It lives here, one stream per project and pattern, and a visit by a buyer
whose number fits the pattern may consume it (at most once).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.reports import ReportBook


class MaskedReportPool(ReportBook):
    class PoolOpened(Aggregate.Created):
        project_id: str
        phone_masked: str

    class MaskedReportConsumed(Aggregate.Event):
        report_id: str
        client_id: uuid.UUID
        visit_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, MaskedReportPool)
            report = aggregate.reports[self.report_id]
            report.status, report.client_id = "confirmed", str(self.client_id)

    def __init__(self, project_id: str, phone_masked: str) -> None:
        super().__init__()
        self.project_id = project_id
        self.phone_masked = phone_masked

    @classmethod
    def open(
        cls,
        pool_id: uuid.UUID,
        *,
        project_id: str,
        phone_masked: str,
        at: datetime,
        trace: dict[str, Any],
    ) -> MaskedReportPool:
        return cls._create(
            cls.PoolOpened,
            id=pool_id,
            project_id=project_id,
            phone_masked=phone_masked,
            timestamp=at,
            **trace,
        )

    def consume(
        self,
        report_id: str,
        client_id: uuid.UUID,
        visit_id: str,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        self.trigger_event(
            self.MaskedReportConsumed,
            report_id=report_id,
            client_id=client_id,
            visit_id=visit_id,
            timestamp=at,
            **trace,
        )
