"""The deadline processor: time passing, turned into commands.

It reads what is due from the views and issues commands; each command re-checks the
client's own stream before acting, so a deadline that a newer event moved is left
alone, a second processor (or a second run) changes nothing, and a restart misses
nothing because the views remember what is due.

Besides reports, protection, inactivity and departures it runs the policy's working-day
rules per project (``rule_tasks``): buyers going dormant (待激活), overdue follow-ups
escalated per grade, and negotiations past ``negotiation_escalation``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from domain.clock_rules import UNGRADED_CADENCE
from domain.services.uow import Context
from domain.values import SYSTEM, parse_duration
from domain.vocabulary import GRADES
from projections import due
from projections.runtime import Follower, ViewDB

if TYPE_CHECKING:
    from yingke.bootstrap import Services

log = logging.getLogger("yingke.deadlines")


@dataclass
class DeadlineProcessor:
    services: Services
    db: ViewDB
    follower: Follower
    batch_size: int = 200
    fired: dict[str, int] = field(
        default_factory=lambda: {
            "report_expired": 0,
            "protection_expired": 0,
            "inactive_released": 0,
            "departure_moves": 0,
            "dormant": 0,
            "follow_up_escalated": 0,
            "negotiation_escalated": 0,
        }
    )

    def run_once(self) -> int:
        now, limit, acted = self.services.clock(), self.batch_size, 0
        for stream_id, report_id in due.expired_reports(self.db, now, limit):
            acted += self._count(
                "report_expired",
                self.services.reports.expire_report(uuid.UUID(stream_id), report_id),
            )
        for client_id, epoch in due.protection_ended(self.db, now, limit):
            acted += self._count(
                "protection_expired",
                self.services.followups.expire_protection(uuid.UUID(client_id), epoch),
            )
        for client_id, epoch in due.inactive(self.db, now, limit):
            acted += self._count(
                "inactive_released",
                self.services.followups.release_inactive(uuid.UUID(client_id), epoch),
            )
        for consultant_id in due.departures_in_progress(self.db):
            moved = continue_departure(self.services, self.db, self.follower, consultant_id)
            self.fired["departure_moves"] += moved
            acted += moved
        for project_id in due.rule_projects(self.db):
            acted += self._working_day(project_id, now, limit)
        return acted

    def _working_day(self, project_id: str, now: datetime, limit: int) -> int:
        """The policy's working-day rules for one project, with its current policy: the
        durations differ per project (and per grade), so the cut-offs do too."""
        policy = self.services.policies.policy_for(project_id)
        followups, acted = self.services.followups, 0
        cutoff = now - policy.delta("dormant_after")
        for client_id, epoch in due.dormant(self.db, project_id, cutoff, limit):
            acted += self._count("dormant", followups.go_dormant(uuid.UUID(client_id), epoch))
        for grade in GRADES:
            wait = parse_duration(policy.escalate_after[grade], f"escalate_after.{grade}")
            candidates = due.escalation_due(
                self.db, project_id, grade, now - wait, limit, ungraded=grade == UNGRADED_CADENCE
            )
            for client_id, epoch in candidates:
                acted += self._count(
                    "follow_up_escalated",
                    followups.escalate_follow_up(uuid.UUID(client_id), epoch),
                )
        cutoff = now - policy.delta("negotiation_escalation")
        for deal_id in due.negotiations_due(self.db, project_id, cutoff, limit):
            acted += self._count(
                "negotiation_escalated",
                self.services.deals.escalate_negotiation(uuid.UUID(deal_id)),
            )
        return acted

    def _count(self, kind: str, acted: bool) -> int:
        if acted:
            self.fired[kind] += 1
        return int(acted)


def continue_departure(
    services: Services,
    db: ViewDB,
    follower: Follower,
    consultant_id: str,
    wait_seconds: float = 5.0,
) -> int:
    """Move every buyer the leaver still owns; complete once the views, caught up past
    the last move, show none left. Safe to call again after any interruption."""
    ctx = Context(SYSTEM, f"departure:{consultant_id}")
    # Without a successor, buyers in a deal stay (they cannot go to the pool): skip them.
    to_pool = services.departures.departure(consultant_id).successor_id is None
    moved = 0
    for _ in range(100):
        if not follower.wait_for(services.position(), wait_seconds):
            return moved  # views are behind; the processor will come back to this
        owned = due.owned_by(db, consultant_id, 500, movable_to_pool=to_pool)
        # A buyer the leaver's stream refused to move (in a deal, going to the pool) is
        # skipped once and left to a manager; it must not keep the departure open.
        done = services.departures.departure(consultant_id).moved
        pending = [cid for cid in owned if done.get(cid) != "skipped"]
        if not pending:
            services.departures.complete_departure(ctx, consultant_id)
            return moved
        for client_id in pending:
            move = services.departures.move_departing_client(
                ctx, consultant_id, uuid.UUID(client_id)
            )
            moved += move.value.outcome != "skipped"
    return moved
