"""client_overview: where does every buyer stand right now? One row per client.

Also what the deadline processor reads to find protection and inactivity deadlines,
and what a departure reads to find a leaver's buyers.
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from projections.runtime import Tx
from projections.sql import bool_type, ts, ts_type

TABLE = "client_overview"

_OWNERSHIP = (Client.OwnershipAwarded, Client.OwnershipTransferred, Client.ClaimedFromPool)


class ClientOverview:
    name = TABLE

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def create(self, tx: Tx, dialect: str) -> None:
        t, b = ts_type(dialect), bool_type(dialect)
        tx.execute(
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                client_id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                phone_masked TEXT NOT NULL,
                status TEXT NOT NULL,
                consultant_id TEXT,
                partner_id TEXT,
                report_id TEXT,
                basis TEXT,
                owner_epoch INTEGER,
                owned_since {t},
                protected_until {t},
                grade TEXT,
                last_follow_up_at {t},
                last_effective_follow_up_at {t},
                next_follow_up_due {t},
                follow_up_basis TEXT,
                inactive_after {t},
                reports INTEGER NOT NULL DEFAULT 0,
                visits INTEGER NOT NULL DEFAULT 0,
                last_visit_at {t},
                follow_ups INTEGER NOT NULL DEFAULT 0,
                effective_follow_ups INTEGER NOT NULL DEFAULT 0,
                release_reason TEXT,
                released_at {t},
                loss_state TEXT,
                lost_reason TEXT,
                claim_pending {b} NOT NULL DEFAULT {"false" if dialect == "postgres" else 0},
                open_disputes INTEGER NOT NULL DEFAULT 0,
                personal_data_erased {b} NOT NULL DEFAULT {"false" if dialect == "postgres" else 0},
                registered_at {t} NOT NULL,
                updated_at {t} NOT NULL,
                version INTEGER NOT NULL
            )"""
        )
        tx.execute(
            f"CREATE INDEX IF NOT EXISTS {TABLE}_consultant ON {TABLE} "
            "(consultant_id, next_follow_up_due)"
        )
        tx.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_protection ON {TABLE} (protected_until)")
        tx.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_inactive ON {TABLE} (inactive_after)")
        tx.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_project ON {TABLE} (project_id, status)")

    def handles(self, event: Any) -> bool:
        return isinstance(event, (Client.Event, Client.ClientRegistered))

    def _set(self, tx: Tx, event: Any, **columns: Any) -> None:
        columns["updated_at"] = ts(self.dialect, event.timestamp)
        columns["version"] = event.originator_version
        assignments = ", ".join(f"{k} = %s" for k in columns)
        tx.execute(
            f"UPDATE {TABLE} SET {assignments} WHERE client_id = %s",
            (*columns.values(), str(event.originator_id)),
        )

    def _bump(self, tx: Tx, event: Any, column: str, by: int = 1, **also: Any) -> None:
        extra = "".join(f", {k} = %s" for k in also)
        tx.execute(
            f"UPDATE {TABLE} SET {column} = {column} + {int(by)}{extra}, updated_at = %s, "
            "version = %s "
            "WHERE client_id = %s",
            (
                *also.values(),
                ts(self.dialect, event.timestamp),
                event.originator_version,
                str(event.originator_id),
            ),
        )

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        d, at = self.dialect, event.timestamp
        if isinstance(event, Client.ClientRegistered):
            tx.execute(
                f"INSERT INTO {TABLE} (client_id, project_id, phone_masked, status, "
                "registered_at, updated_at, version) VALUES (%s, %s, %s, 'unowned', %s, %s, %s) "
                "ON CONFLICT (client_id) DO NOTHING",
                (
                    str(event.originator_id),
                    event.project_id,
                    event.phone_masked,
                    ts(d, at),
                    ts(d, at),
                    event.originator_version,
                ),
            )
        elif isinstance(event, Client.ReportFiled):
            self._bump(tx, event, "reports")
        elif isinstance(event, Client.ClientVisited):
            self._bump(tx, event, "visits", last_visit_at=ts(d, at))
        elif isinstance(event, _OWNERSHIP):
            partner = getattr(event, "partner_id", None)
            report = getattr(event, "report_id", None)
            basis = getattr(event, "basis", "pool_claim")
            self._set(
                tx,
                event,
                status="owned",
                consultant_id=event.consultant_id,
                partner_id=partner,
                report_id=report,
                basis=basis,
                owner_epoch=event.originator_version,
                owned_since=ts(d, event.since),
                protected_until=ts(d, event.protected_until),
                claim_pending=False,
                release_reason=None,
                released_at=None,
            )
        elif isinstance(event, Client.ProtectionExtended):
            self._set(tx, event, protected_until=ts(d, event.protected_until))
        elif isinstance(event, Client.ScheduleUpdated):
            self._set(
                tx,
                event,
                next_follow_up_due=ts(d, event.next_follow_up_due),
                follow_up_basis=event.basis,
                inactive_after=ts(d, event.inactive_after),
            )
        elif isinstance(event, Client.FollowUpLogged):
            self._follow_up(tx, event)
        elif isinstance(event, Client.GradeChanged):
            self._set(tx, event, grade=event.grade)
        elif isinstance(event, Client.ReleasedToPool):
            self._set(
                tx,
                event,
                status="pool",
                consultant_id=None,
                partner_id=None,
                report_id=None,
                basis=None,
                owner_epoch=None,
                owned_since=None,
                protected_until=None,
                next_follow_up_due=None,
                follow_up_basis=None,
                inactive_after=None,
                release_reason=event.reason,
                released_at=ts(d, at),
            )
        elif isinstance(event, Client.LossRequested):
            self._set(tx, event, loss_state="pending")
        elif isinstance(event, Client.LossApproved):
            self._set(tx, event, loss_state="approved", lost_reason=event.loss_reason)
        elif isinstance(event, Client.LossRejected):
            self._set(tx, event, loss_state="rejected")
        elif isinstance(event, Client.ClaimRequested):
            self._set(tx, event, claim_pending=True)
        elif isinstance(event, Client.ClaimRejected):
            self._set(tx, event, claim_pending=False)
        elif isinstance(event, (Client.DisputeOpened, Client.DisputeAppealed)):
            self._bump(tx, event, "open_disputes")
        elif isinstance(event, Client.DisputeRuled):
            self._bump(tx, event, "open_disputes", by=-1)
        elif isinstance(event, Client.PersonalDataErased):
            self._set(tx, event, personal_data_erased=True)
        else:
            self._set(tx, event)

    def _follow_up(self, tx: Tx, event: Any) -> None:
        d, at = self.dialect, event.timestamp
        if event.effective:
            tx.execute(
                f"UPDATE {TABLE} SET follow_ups = follow_ups + 1, "
                "effective_follow_ups = effective_follow_ups + 1, last_follow_up_at = %s, "
                "last_effective_follow_up_at = %s, updated_at = %s, version = %s "
                "WHERE client_id = %s",
                (
                    ts(d, at),
                    ts(d, at),
                    ts(d, at),
                    event.originator_version,
                    str(event.originator_id),
                ),
            )
        else:
            self._bump(tx, event, "follow_ups", last_follow_up_at=ts(d, at))
