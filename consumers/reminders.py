"""`yingke consume reminders`: due follow-ups, expiring protection and escalations, posted
to a webhook (a WeCom group robot by default), once each.

How a reminder comes to be:
1. ``handle`` reads Client events and keeps, per buyer, what is due and for whom:
   ScheduleUpdated → the follow-up is due soon (``due_lead`` before), overdue (at the
   deadline) and escalated to the supervisor (a day after, as the task board does);
   OwnershipAwarded / OwnershipTransferred / ClaimedFromPool / ProtectionExtended →
   protection expiring (``protection_lead`` before its end); ReleasedToPool cancels.
   Rows go to ``reminder_schedule`` in the same transaction as the buyer's last applied
   version (``reminder_clients``), before the offset is committed: a redelivered or
   re-sent event is older than that version and changes nothing.
2. A timer inside the same process (``Sender``, run whenever the consumer has drained
   its partitions, so a backlog cannot fire reminders a later event already moved)
   posts the reminders whose time has come. A failed post is retried with exponential
   backoff; after ``max_attempts`` the notification goes to the dead-letter topic.
   Either way its id lands in ``reminders_sent`` in the transaction that holds the
   row, so no restart or second process sends it again.

A notification id is derived from the identity of the event that set the deadline and
the kind of reminder; an event that leaves a deadline where it was keeps the id, so a
buyer whose due time did not move is not reminded twice. Only masked phones are sent.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from consumers import contract
from consumers.broker import (
    Message,
    Publisher,
    Record,
    Stopper,
    ensure_topics,
    group_consumer,
    run_group,
)
from consumers.store import create_tables, timestamp_type
from domain.quota import CHINA
from projections.runtime import Tx, ViewDB
from projections.sql import read_ts, ts

if TYPE_CHECKING:
    from yingke.metrics import Metrics
    from yingke.settings import Settings

log = logging.getLogger("yingke.consume.reminders")

ESCALATE_AFTER = timedelta(days=1)  # as projections.queries marks a task escalated
NOTIFICATION_NAMESPACE = uuid.UUID("5d0c1f0e-8f7a-5c55-b2a4-3e9d5d8a7c21")
KINDS = ("follow_up_due", "follow_up_overdue", "follow_up_escalated", "protection_expiring")
_FOLLOW_UP = KINDS[:3]
_GAINS = (
    "Client.OwnershipAwarded",
    "Client.OwnershipTransferred",
    "Client.ClaimedFromPool",
    "Client.OwnershipMigrated",
)
TITLES = {
    "follow_up_due": "跟进即将到期 Follow-up due soon",
    "follow_up_overdue": "跟进已逾期 Follow-up overdue",
    "follow_up_escalated": "跟进逾期超过一天，请主管介入 Follow-up escalated",
    "protection_expiring": "保护期即将结束 Protection ending",
}


def tables(db: ViewDB) -> list[str]:
    t = timestamp_type(db)
    return [
        "CREATE TABLE IF NOT EXISTS reminder_clients (client_id TEXT PRIMARY KEY, "
        "version BIGINT NOT NULL, project_id TEXT, phone_masked TEXT, consultant_id TEXT)",
        "CREATE TABLE IF NOT EXISTS reminder_schedule (client_id TEXT NOT NULL, "
        "kind TEXT NOT NULL, notification_id TEXT NOT NULL, deadline "
        f"{t} NOT NULL, fire_at {t} NOT NULL, project_id TEXT, phone_masked TEXT, "
        "consultant_id TEXT, event_id TEXT NOT NULL, state TEXT NOT NULL, "
        f"attempts INTEGER NOT NULL, next_attempt_at {t}, last_error TEXT, "
        "PRIMARY KEY (client_id, kind))",
        "CREATE INDEX IF NOT EXISTS reminder_schedule_due ON reminder_schedule (state, fire_at)",
        "CREATE TABLE IF NOT EXISTS reminders_sent (notification_id TEXT PRIMARY KEY, "
        f"client_id TEXT NOT NULL, kind TEXT NOT NULL, outcome TEXT NOT NULL, "
        f"attempts INTEGER NOT NULL, sent_at {t} NOT NULL)",
    ]


def migrate(db: ViewDB) -> None:
    create_tables(db, tables(db))


def notification_id(event_id: str, kind: str) -> str:
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{event_id}:{kind}"))


# ------------------------------------------------------------------- planning


@dataclass
class Buyer:
    client_id: str
    version: int = 0
    project_id: str | None = None
    phone_masked: str | None = None
    consultant_id: str | None = None


@dataclass(frozen=True)
class Due:
    kind: str
    deadline: datetime
    fire_at: datetime
    event_id: str


@dataclass(frozen=True)
class Leads:
    due: timedelta = timedelta(hours=2)
    protection: timedelta = timedelta(days=3)


def plan(buyer: Buyer, message: dict[str, Any], leads: Leads) -> dict[str, Due | None]:
    """What one Client event changes in the buyer's reminders: kind → Due, or None to
    cancel. Pure: the buyer is updated in place, nothing is read or written."""
    kind, data, eid = message["type"], message["data"], message["event_id"]
    buyer.version = message["aggregate_version"]
    if kind == "Client.ClientRegistered":
        buyer.project_id, buyer.phone_masked = data["project_id"], data["phone_masked"]
        return {}
    if kind in _GAINS or kind == "Client.ProtectionExtended":
        if kind in _GAINS:
            buyer.consultant_id = data["consultant_id"]
        until = datetime.fromisoformat(data["protected_until"])
        ending = Due("protection_expiring", until, until - leads.protection, eid)
        return {"protection_expiring": ending}
    if kind == "Client.ScheduleUpdated":
        if data["next_follow_up_due"] is None:
            return dict.fromkeys(_FOLLOW_UP)
        due = datetime.fromisoformat(data["next_follow_up_due"])
        return {
            "follow_up_due": Due("follow_up_due", due, due - leads.due, eid),
            "follow_up_overdue": Due("follow_up_overdue", due, due, eid),
            "follow_up_escalated": Due("follow_up_escalated", due, due + ESCALATE_AFTER, eid),
        }
    if kind == "Client.ReleasedToPool":
        buyer.consultant_id = None
        return dict.fromkeys(KINDS)
    return {}


# ---------------------------------------------------------------- consuming


@dataclass
class Reminders:
    """The consumer side: events in, reminder rows out, one transaction per batch."""

    db: ViewDB
    leads: Leads = field(default_factory=Leads)
    scheduled: int = 0

    def apply(self, messages: Sequence[Message]) -> int:
        with self.db.transaction() as tx:
            buyers: dict[str, Buyer] = {}
            applied = sum(self.handle(tx, m, buyers) for m in messages)
            for buyer in buyers.values():
                self._save_buyer(tx, buyer)
        return applied

    def handle(self, tx: Tx, message: Message, buyers: dict[str, Buyer]) -> int:
        """Apply one message if it is newer than what this buyer has seen; 1 if it was."""
        payload = contract.decode(message.value)
        if payload.get("aggregate_type") != "Client":
            return 0
        client_id = payload["aggregate_id"]
        buyer = buyers.get(client_id) or self._load_buyer(tx, client_id)
        buyers[client_id] = buyer
        if payload["aggregate_version"] <= buyer.version:
            return 0  # a duplicate: idempotent by event identity, not by offset
        for kind, due in plan(buyer, payload, self.leads).items():
            if due is None:
                tx.execute(
                    "UPDATE reminder_schedule SET state = 'cancelled' "
                    "WHERE client_id = %s AND kind = %s AND state = 'pending'",
                    (client_id, kind),
                )
            else:
                self._schedule(tx, buyer, due)
        return 1

    def _schedule(self, tx: Tx, buyer: Buyer, due: Due) -> None:
        d = self.db.dialect
        tx.execute(
            "SELECT deadline, consultant_id FROM reminder_schedule "
            "WHERE client_id = %s AND kind = %s",
            (buyer.client_id, due.kind),
        )
        found = tx.fetchone()
        if found and read_ts(found[0]) == due.deadline and found[1] == buyer.consultant_id:
            return  # the same deadline for the same person: the same notification
        self.scheduled += 1
        tx.execute(
            "INSERT INTO reminder_schedule (client_id, kind, notification_id, deadline, "
            "fire_at, project_id, phone_masked, consultant_id, event_id, state, attempts, "
            "next_attempt_at, last_error) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending', 0, NULL, NULL) "
            "ON CONFLICT (client_id, kind) DO UPDATE SET notification_id = "
            "excluded.notification_id, deadline = excluded.deadline, fire_at = "
            "excluded.fire_at, project_id = excluded.project_id, phone_masked = "
            "excluded.phone_masked, consultant_id = excluded.consultant_id, event_id = "
            "excluded.event_id, state = 'pending', attempts = 0, next_attempt_at = NULL, "
            "last_error = NULL",
            (
                buyer.client_id,
                due.kind,
                notification_id(due.event_id, due.kind),
                ts(d, due.deadline),
                ts(d, due.fire_at),
                buyer.project_id,
                buyer.phone_masked,
                buyer.consultant_id,
                due.event_id,
            ),
        )

    def _load_buyer(self, tx: Tx, client_id: str) -> Buyer:
        tx.execute(
            "SELECT version, project_id, phone_masked, consultant_id FROM reminder_clients "
            "WHERE client_id = %s",
            (client_id,),
        )
        row = tx.fetchone()
        if row is None:
            return Buyer(client_id)
        return Buyer(client_id, int(row[0]), row[1], row[2], row[3])

    def _save_buyer(self, tx: Tx, b: Buyer) -> None:
        tx.execute(
            "INSERT INTO reminder_clients (client_id, version, project_id, phone_masked, "
            "consultant_id) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (client_id) DO UPDATE "
            "SET version = excluded.version, project_id = excluded.project_id, "
            "phone_masked = excluded.phone_masked, consultant_id = excluded.consultant_id",
            (b.client_id, b.version, b.project_id, b.phone_masked, b.consultant_id),
        )


# ------------------------------------------------------------------ sending


class DeliveryError(RuntimeError):
    pass


class Webhook(Protocol):
    def post(self, body: dict[str, Any], notification_id: str) -> None:
        """Deliver or raise DeliveryError."""


@dataclass
class HttpWebhook:
    """A JSON POST; a WeCom robot answers 200 with ``errcode`` 0 when it took the message."""

    url: str
    timeout: float = 5.0

    def post(self, body: dict[str, Any], notification_id: str) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body, ensure_ascii=False).encode(),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "X-Yingke-Notification-Id": notification_id,
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError(str(exc)) from exc
        try:
            errcode = json.loads(answer).get("errcode", 0) if answer.strip() else 0
        except (ValueError, AttributeError):
            errcode = 0
        if errcode != 0:
            raise DeliveryError(f"webhook answered errcode {errcode}")


class LogWebhook:
    """No webhook configured: say what would have been sent."""

    def post(self, body: dict[str, Any], notification_id: str) -> None:
        log.warning("no YINGKE_REMINDER_WEBHOOK: %s %s", notification_id, body)


def wecom_markdown(row: dict[str, Any]) -> dict[str, Any]:
    """The WeCom group robot's markdown message; only the masked phone names the buyer."""
    deadline = row["deadline"].astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"**{TITLES[row['kind']]}**",
        f"> 客户 Buyer: {row['phone_masked'] or '—'}  项目 Project: {row['project_id'] or '—'}",
        f"> 置业顾问 Consultant: {row['consultant_id'] or '—'}",
        f"> 时间 Deadline: {deadline} (北京时间)",
        f"> 编号 Id: {row['notification_id']}",
    ]
    return {"msgtype": "markdown", "markdown": {"content": "\n".join(lines)}}


_COLUMNS = (
    "notification_id",
    "client_id",
    "kind",
    "deadline",
    "project_id",
    "phone_masked",
    "consultant_id",
    "attempts",
)


@dataclass
class Sender:
    db: ViewDB
    webhook: Webhook
    dead_letters: Publisher
    dead_letter_topic: str
    clock: Callable[[], datetime]
    max_attempts: int = 5
    backoff: float = 2.0  # seconds before the 2nd attempt; doubled each time after
    batch_size: int = 50
    delivered: int = 0
    dead_lettered: int = 0
    failures: int = 0
    format: Callable[[dict[str, Any]], dict[str, Any]] = wecom_markdown
    metrics: Metrics | None = None

    def due(self) -> list[str]:
        now = ts(self.db.dialect, self.clock())
        rows = self.db.query(
            "SELECT notification_id FROM reminder_schedule WHERE state = 'pending' "
            "AND fire_at <= %s AND (next_attempt_at IS NULL OR next_attempt_at <= %s) "
            "ORDER BY fire_at LIMIT %s",
            (now, now, self.batch_size),
        )
        return [str(r[0]) for r in rows]

    def run_once(self) -> int:
        """Try every reminder that is due now; the number of attempts made."""
        return sum(self._attempt(nid) for nid in self.due())

    def _attempt(self, nid: str) -> int:
        d = self.db.dialect
        lock = " FOR UPDATE SKIP LOCKED" if d == "postgres" else ""
        with self.db.transaction() as tx:
            tx.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM reminder_schedule "
                f"WHERE notification_id = %s AND state = 'pending'{lock}",
                (nid,),
            )
            found = tx.fetchone()
            if found is None:
                return 0  # another sender has it, or it was cancelled meanwhile
            row = dict(zip(_COLUMNS, found, strict=True))
            row["deadline"] = read_ts(row["deadline"])
            tx.execute("SELECT outcome FROM reminders_sent WHERE notification_id = %s", (nid,))
            if tx.fetchone() is not None:
                self._close(tx, nid, "sent")
                return 0
            attempts = int(row["attempts"]) + 1
            body = self.format(row)
            try:
                self.webhook.post(body, nid)
            except DeliveryError as exc:
                self.failures += 1
                if attempts >= self.max_attempts:
                    self._dead_letter(row, body, attempts, str(exc))
                    self._record(tx, row, "dead_letter", attempts)
                    self._close(tx, nid, "dead_letter", str(exc))
                    self.dead_lettered += 1
                    if self.metrics is not None:
                        self.metrics.reminders_dead_lettered.inc()
                else:
                    wait = timedelta(seconds=self.backoff * 2 ** (attempts - 1))
                    tx.execute(
                        "UPDATE reminder_schedule SET attempts = %s, next_attempt_at = %s, "
                        "last_error = %s WHERE notification_id = %s",
                        (attempts, ts(d, self.clock() + wait), str(exc)[:500], nid),
                    )
                return 1
            self._record(tx, row, "delivered", attempts)
            self._close(tx, nid, "sent")
            self.delivered += 1
            if self.metrics is not None:
                self.metrics.reminders_sent.inc()
            return 1

    def _record(self, tx: Tx, row: dict[str, Any], outcome: str, attempts: int) -> None:
        tx.execute(
            "INSERT INTO reminders_sent (notification_id, client_id, kind, outcome, "
            "attempts, sent_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                row["notification_id"],
                row["client_id"],
                row["kind"],
                outcome,
                attempts,
                ts(self.db.dialect, self.clock()),
            ),
        )

    def _close(self, tx: Tx, nid: str, state: str, error: str | None = None) -> None:
        tx.execute(
            "UPDATE reminder_schedule SET state = %s, last_error = %s WHERE notification_id = %s",
            (state, error, nid),
        )

    def _dead_letter(
        self, row: dict[str, Any], body: dict[str, Any], attempts: int, error: str
    ) -> None:
        letter = {
            "notification_id": row["notification_id"],
            "kind": row["kind"],
            "client_id": row["client_id"],
            "attempts": attempts,
            "last_error": error,
            "failed_at": self.clock().isoformat(),
            "body": body,
        }
        self.dead_letters.publish(
            self.dead_letter_topic,
            [
                Record(
                    key=row["client_id"].encode(),
                    value=json.dumps(letter, ensure_ascii=False).encode(),
                    headers=[("notification_id", row["notification_id"].encode())],
                )
            ],
        )


@dataclass
class Timer:
    """Runs the sender at most every ``interval`` seconds, only once the consumer drained."""

    sender: Sender
    interval: float
    last: float = 0.0
    monotonic: Callable[[], float] = time.monotonic  # injected by tests

    def __call__(self, drained: bool) -> None:
        now = self.monotonic()
        if drained and now - self.last >= self.interval:
            self.last = now
            self.sender.run_once()


def leads_from(settings: Any) -> Leads:
    from domain.values import parse_duration

    return Leads(
        due=parse_duration(settings.reminder_due_lead, "YINGKE_REMINDER_DUE_LEAD"),
        protection=parse_duration(
            settings.reminder_protection_lead, "YINGKE_REMINDER_PROTECTION_LEAD"
        ),
    )


def main(stopper: Stopper | None = None, settings: Settings | None = None) -> int:
    from consumers.broker import KafkaPublisher
    from yingke import metrics
    from yingke.bootstrap import system_clock, view_db
    from yingke.settings import load_settings

    settings = settings or load_settings()
    observed = metrics.Metrics()
    stopper = stopper or Stopper().install()
    topics = [settings.kafka_topic, settings.reminder_dead_letter_topic]
    ensure_topics(settings.kafka_bootstrap, topics)
    db = view_db(settings)
    migrate(db)
    webhook: Webhook = (
        HttpWebhook(settings.reminder_webhook) if settings.reminder_webhook else LogWebhook()
    )
    if not settings.reminder_webhook:
        log.warning("YINGKE_REMINDER_WEBHOOK is not set: reminders are only logged")
    publisher = KafkaPublisher(settings.kafka_bootstrap)
    sender = Sender(
        db,
        webhook,
        publisher,
        settings.reminder_dead_letter_topic,
        system_clock,
        max_attempts=settings.reminder_max_attempts,
        backoff=settings.reminder_backoff,
        metrics=observed,
    )
    consumer = group_consumer(
        settings.kafka_bootstrap, settings.kafka_topic, "yingke-reminders", settings.kafka_fast_join
    )
    print(f"yingke consume reminders: {settings.kafka_topic} → webhook", flush=True)
    metrics.serve(observed, settings, "consume reminders")
    try:
        run_group(
            consumer,
            observed.counted("reminders", Reminders(db, leads_from(settings)).apply),
            stopper,
            max_records=settings.consumer_batch_size,
            idle=Timer(sender, settings.reminder_tick),
            heartbeat_file=settings.heartbeat_file,
            on_error=lambda: observed.failed("consume-reminders"),
        )
    finally:
        consumer.close(autocommit=False)
        publisher.close()
        db.close()
    return 0
