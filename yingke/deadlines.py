"""The deadline processor: time passing, turned into commands.

It reads what is due from the views and issues commands; each command re-checks the
client's own stream before acting, so a deadline that a newer event moved is left
alone, a second processor (or a second run) changes nothing, and a restart misses
nothing because the views remember what is due.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from domain.application import Context, Yingke
from domain.values import SYSTEM
from projections.runtime import Follower, ViewDB
from projections.sql import ts

log = logging.getLogger("yingke.deadlines")

# Buyers in a deal (成交) are never released by the clock (the Client stream refuses it);
# leaving them out here keeps them from being re-issued, and crowding out the batch,
# on every run.
NOT_IN_DEAL = (
    "NOT EXISTS (SELECT 1 FROM deal_pipeline d WHERE d.client_id = client_overview.client_id "
    "AND d.status <> 'cancelled')"
)


@dataclass
class DeadlineProcessor:
    app: Yingke
    db: ViewDB
    follower: Follower
    batch_size: int = 200
    fired: dict[str, int] = field(
        default_factory=lambda: {
            "report_expired": 0,
            "protection_expired": 0,
            "inactive_released": 0,
            "departure_moves": 0,
        }
    )

    def run_once(self) -> int:
        now = ts(self.db.dialect, self.app.clock())
        acted = 0
        for stream_id, report_id in self.db.query(
            "SELECT stream_id, report_id FROM report_log WHERE status = 'accepted' "
            "AND valid_until <= %s ORDER BY valid_until LIMIT %s",
            (now, self.batch_size),
        ):
            acted += self._count(
                "report_expired", self.app.expire_report(uuid.UUID(stream_id), report_id)
            )
        for client_id, epoch in self.db.query(
            "SELECT client_id, owner_epoch FROM client_overview WHERE status = 'owned' "
            f"AND protected_until <= %s AND {NOT_IN_DEAL} ORDER BY protected_until LIMIT %s",
            (now, self.batch_size),
        ):
            acted += self._count(
                "protection_expired", self.app.expire_protection(uuid.UUID(client_id), epoch)
            )
        for client_id, epoch in self.db.query(
            "SELECT client_id, owner_epoch FROM client_overview WHERE status = 'owned' "
            f"AND inactive_after <= %s AND {NOT_IN_DEAL} ORDER BY inactive_after LIMIT %s",
            (now, self.batch_size),
        ):
            acted += self._count(
                "inactive_released", self.app.release_inactive(uuid.UUID(client_id), epoch)
            )
        for (consultant_id,) in self.db.query(
            "SELECT consultant_id FROM departures WHERE status = 'in_progress'"
        ):
            moved = continue_departure(self.app, self.db, self.follower, consultant_id)
            self.fired["departure_moves"] += moved
            acted += moved
        return acted

    def _count(self, kind: str, acted: bool) -> int:
        if acted:
            self.fired[kind] += 1
        return int(acted)


def continue_departure(
    app: Yingke,
    db: ViewDB,
    follower: Follower,
    consultant_id: str,
    wait_seconds: float = 5.0,
) -> int:
    """Move every buyer the leaver still owns; complete once the views, caught up past
    the last move, show none left. Safe to call again after any interruption."""
    ctx = Context(SYSTEM, f"departure:{consultant_id}")
    # Without a successor, buyers in a deal stay (they cannot go to the pool): skip them.
    stays = "" if app.departure(consultant_id).successor_id else f" AND {NOT_IN_DEAL}"
    moved = 0
    for _ in range(100):
        if not follower.wait_for(app.position(), wait_seconds):
            return moved  # views are behind; the processor will come back to this
        rows = db.query(
            "SELECT client_id FROM client_overview WHERE consultant_id = %s "
            f"AND status = 'owned'{stays} ORDER BY client_id LIMIT 500",
            (consultant_id,),
        )
        # A buyer the leaver's stream refused to move (in a deal, going to the pool) is
        # skipped once and left to a manager; it must not keep the departure open.
        done = app.departure(consultant_id).moved
        pending = [cid for (cid,) in rows if done.get(cid) != "skipped"]
        if not pending:
            app.complete_departure(ctx, consultant_id)
            return moved
        for client_id in pending:
            result = app.move_departing_client(ctx, consultant_id, uuid.UUID(client_id))
            moved += result.body["outcome"] != "skipped"
    return moved
