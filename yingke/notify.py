"""Delivering the notification outbox to people (ADR 0052).

``projections.notification_outbox`` plans who is to be told what and when; this module
tells them. The ``Sender`` is one worker, run as a loop inside ``yingke serve`` on the
embedded default and inside ``yingke consume reminders`` when scaled. Per notification:

1. Claim it in one short transaction: a row in ``notification_delivery`` moves to
   ``sending`` with a lease, only if it is not delivered, not leased and its retry time
   has come. Two senders (or a restarted one) cannot both hold it; no transaction stays
   open across the HTTP call, so the views keep moving while a receiver is slow.
2. Pick the channel now, from the person's current record: a WeCom application message
   to their ``wecom_user_id`` (when the corp credentials are configured), else their own
   ``notify_webhook``, else the group webhook (YINGKE_NOTIFY_WEBHOOK, a WeCom group robot
   by default) naming them; with none of these it is ``unroutable``.
3. Post with the ``X-Yingke-Notification-Id`` header (WeCom application messages also ask
   WeCom's own duplicate check), then record ``sent``, or a retry after a doubling
   backoff on the injected clock, or ``failed`` after the last attempt.

A crash between a post and its record leaves a lease that runs out, and the post is
repeated with the same id: at-least-once, and a receiver drops what it has seen. A
notice that first comes due more than ``max_age`` ago (a worker down for days, a new
deployment over old data) is recorded ``stale`` and not sent.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from domain.quota import CHINA
from domain.vocabulary import LOSS_REASON_LABELS
from projections.notification_outbox import NOTIFICATIONS
from projections.runtime import Tx, ViewDB
from projections.sql import ts

if TYPE_CHECKING:
    from yingke.metrics import Metrics
    from yingke.settings import Settings

log = logging.getLogger("yingke.notify")

HEADER = "X-Yingke-Notification-Id"
DELIVERY = "notification_delivery"


def tables(dialect: str) -> list[str]:
    t = "TIMESTAMPTZ" if dialect == "postgres" else "TEXT"
    return [
        f"CREATE TABLE IF NOT EXISTS {DELIVERY} (notification_id TEXT PRIMARY KEY, "
        "status TEXT NOT NULL, channel TEXT, attempts INTEGER NOT NULL, "
        f"next_attempt_at {t}, lease_until {t}, last_error TEXT, sent_at {t}, "
        f"updated_at {t} NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {DELIVERY}_status ON {DELIVERY} (status, next_attempt_at)",
    ]


def migrate(db: ViewDB) -> None:
    with db.transaction() as tx:
        for statement in tables(db.dialect):
            tx.execute(statement)


# ------------------------------------------------------------------ people


@dataclass(frozen=True)
class Contact:
    principal_id: str
    display_name: str | None = None
    wecom_user_id: str | None = None
    notify_webhook: str | None = None
    active: bool = True

    @property
    def name(self) -> str:
        return self.display_name or self.principal_id


class Directory(Protocol):
    def contact(self, principal_id: str) -> Contact | None: ...


@dataclass
class PrincipalDirectory:
    """Contacts read from the principal's own stream at delivery time, so a changed
    webhook or WeCom id counts from the next notification on."""

    principal: Callable[[str], Any]  # domain.services.principals.Principals.principal

    def contact(self, principal_id: str) -> Contact | None:
        found = self.principal(principal_id)
        if found is None:
            return None
        return Contact(
            principal_id,
            getattr(found, "display_name", None) or None,
            getattr(found, "wecom_user_id", None) or None,
            getattr(found, "notify_webhook", None) or None,
            not getattr(found, "revoked", False),
        )


# ---------------------------------------------------------------- channels


class DeliveryError(RuntimeError):
    pass


def _call(request: urllib.request.Request, timeout: float) -> dict[str, Any]:
    """One HTTP exchange; a non-2xx answer or an ``errcode`` other than 0 is an error."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(str(exc)) from exc
    try:
        parsed = json.loads(answer) if answer.strip() else {}
    except ValueError:
        parsed = {}
    body = parsed if isinstance(parsed, dict) else {}
    errcode = body.get("errcode", 0)
    if errcode not in (0, None):
        raise DeliveryError(f"answered errcode {errcode}: {body.get('errmsg', '')}")
    return body


@dataclass
class HttpWebhook:
    """A JSON POST (a WeCom group robot answers ``errcode`` 0 when it took the message)."""

    timeout: float = 5.0

    def post(self, url: str, body: dict[str, Any], notification_id: str) -> None:
        request = urllib.request.Request(
            url,
            data=json.dumps(body, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json; charset=utf-8", HEADER: notification_id},
            method="POST",
        )
        _call(request, self.timeout)


# errcodes that mean the access token is no longer good: fetch a new one and try again.
_TOKEN_ERRORS = ("40014", "42001", "40001")


@dataclass
class WeComApp:
    """WeCom application messages (应用消息) to one member, by ``message/send``.

    The access token (``gettoken``, valid ``expires_in`` seconds) is cached until five
    minutes before it runs out, on the injected clock, and fetched again when WeCom says
    it expired early.
    """

    base_url: str
    corp_id: str
    secret: str
    agent_id: int
    clock: Callable[[], datetime]
    timeout: float = 5.0
    _token: tuple[str, datetime] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _access_token(self, fresh: bool = False) -> str:
        with self._lock:
            if not fresh and self._token is not None and self.clock() < self._token[1]:
                return self._token[0]
            query = urllib.parse.urlencode({"corpid": self.corp_id, "corpsecret": self.secret})
            url = f"{self.base_url.rstrip('/')}/cgi-bin/gettoken?{query}"
            answer = _call(urllib.request.Request(url, method="GET"), self.timeout)
            token = answer.get("access_token")
            if not token:
                raise DeliveryError("gettoken answered no access_token")
            lifetime = max(0, int(answer.get("expires_in", 7200)) - 300)
            self._token = (str(token), self.clock() + timedelta(seconds=lifetime))
            return self._token[0]

    def send(self, user_id: str, content: str, notification_id: str) -> None:
        body = {
            "touser": user_id,
            "msgtype": "markdown",
            "agentid": self.agent_id,
            "markdown": {"content": content},
            # WeCom drops a repeat of the same content to the same member within the interval.
            "enable_duplicate_check": 1,
            "duplicate_check_interval": 1800,
        }
        for fresh in (False, True):
            query = urllib.parse.urlencode({"access_token": self._access_token(fresh)})
            request = urllib.request.Request(
                f"{self.base_url.rstrip('/')}/cgi-bin/message/send?{query}",
                data=json.dumps(body, ensure_ascii=False).encode(),
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    HEADER: notification_id,
                },
                method="POST",
            )
            try:
                answer = _call(request, self.timeout)
            except DeliveryError as exc:
                if not fresh and any(code in str(exc) for code in _TOKEN_ERRORS):
                    continue
                raise
            if answer.get("invaliduser"):
                raise DeliveryError(f"WeCom does not know member {answer['invaliduser']}")
            return


# --------------------------------------------------------------- templates

TITLES = {
    "follow_up_due": "跟进即将到期",
    "follow_up_overdue": "跟进已逾期",
    "follow_up_escalated": "跟进逾期未处理，请主管介入",
    "protection_expiring": "保护期即将结束",
    "approval_requested": "有待审批的申请",
    "approval_decided": "申请已审批",
    "dispute_opened": "有新的申诉待裁决",
    "appeal_opened": "申诉人已申请复议，待裁决",
    "dispute_ruled": "申诉已裁决",
    "dormant_buyer": "客户长期未跟进，已转为待激活",
    "negotiation_escalated": "谈判停滞未签约，请经理介入",
}
_STAGES = {"deposit_paid": "已交定金", "subscribed": "已认购"}
_REQUESTS = {"loss": "战败申请", "claim": "捞客申请"}
_OUTCOMES = {"upheld": "申诉成立", "dismissed": "申诉驳回"}


def china_time(moment: datetime | str | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Message:
    title: str
    lines: list[str]

    def markdown(self, mention: str | None = None) -> str:
        head = f"**{self.title}**"
        body = [f"> {line}" for line in self.lines]
        tail = [f"<@{mention}>"] if mention else []
        return "\n".join([head, *body, *tail])


def render(row: dict[str, Any], names: Callable[[str | None], str]) -> Message:
    """The Chinese text of one notification; the buyer only ever by masked phone."""
    kind = row["kind"]
    facts: dict[str, Any] = json.loads(row["facts"] or "{}")
    buyer = facts.get("phone_masked") or "—"
    lines = [f"客户：{buyer}（项目 {row['project_id'] or '—'}）"]
    if kind in ("follow_up_due", "follow_up_overdue", "follow_up_escalated"):
        lines.append(f"置业顾问：{names(facts.get('consultant_id'))}")
        lines.append(f"应跟进时间：{china_time(facts.get('deadline'))}（北京时间）")
        if facts.get("grade"):
            lines.append(f"意向等级：{facts['grade']}类")
    elif kind == "protection_expiring":
        lines.append(f"保护期至：{china_time(facts.get('deadline'))}（北京时间），请及时跟进")
    elif kind == "approval_requested":
        lines.append(f"申请：{_REQUESTS.get(facts.get('request', ''), '申请')}")
        lines.append(f"申请人：{names(facts.get('requester_id'))}")
        if facts.get("reason"):
            reason = str(facts["reason"])
            lines.append(f"原因：{LOSS_REASON_LABELS.get(reason, reason)}")
    elif kind == "approval_decided":
        verdict = "已通过" if facts.get("approved") else "未通过"
        lines.append(f"{_REQUESTS.get(facts.get('request', ''), '申请')}{verdict}")
        lines.append(f"审批人：{names(facts.get('decided_by'))}")
    elif kind == "dormant_buyer":
        lines.append(f"最近一次有效联系：{china_time(facts.get('last_activity_at'))}（北京时间）")
        lines.append("请尽快联系客户，完成唤醒跟进")
    elif kind == "negotiation_escalated":
        lines.append(f"置业顾问：{names(facts.get('consultant_id'))}")
        stage = _STAGES.get(facts.get("stage", ""), facts.get("stage") or "—")
        lines.append(f"当前阶段：{stage}，自 {china_time(facts.get('since'))}（北京时间）起未签约")
    elif kind == "dispute_opened":
        # A consultant by name; a channel by its partner id (partners are no principals).
        claimant = facts.get("claimant_id") or "—"
        if facts.get("claimant_kind") == "channel":
            lines.append(f"申诉方：渠道 {claimant}")
        else:
            lines.append(f"申诉方：置业顾问 {names(facts.get('claimant_id'))}")
    elif kind == "appeal_opened":
        lines.append(f"复议人：{names(facts.get('appellant_id'))}")
        lines.append("复议后的裁决为终局裁决")
    elif kind == "dispute_ruled":
        lines.append(f"裁决：{_OUTCOMES.get(facts.get('outcome', ''), facts.get('outcome'))}")
        lines.append("终局裁决" if facts.get("final") else "可在规定期限内复议一次")
    lines.append(f"通知时间：{china_time(row['due_at'])}（北京时间）")
    lines.append(f"编号：{row['notification_id']}")
    return Message(TITLES.get(kind, kind), lines)


def wecom_robot(message: Message, mention: str | None) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": message.markdown(mention)}}


def plain_json(row: dict[str, Any], message: Message, recipient: Contact | None) -> dict[str, Any]:
    return {
        "notification_id": row["notification_id"],
        "kind": row["kind"],
        "project_id": row["project_id"],
        "client_id": row["client_id"],
        "recipient_id": row["recipient_id"],
        "recipient_name": recipient.name if recipient else None,
        "title": message.title,
        "text": "\n".join(message.lines),
        "due_at": row["due_at"].isoformat() if row["due_at"] else None,
    }


# ------------------------------------------------------------------ sender


@dataclass(frozen=True)
class Leads:
    """How early a deadline is announced; every other kind is told when it is due."""

    due: timedelta = timedelta(hours=2)
    protection: timedelta = timedelta(days=3)

    def of(self, kind: str) -> timedelta:
        if kind == "follow_up_due":
            return self.due
        if kind == "protection_expiring":
            return self.protection
        return timedelta(0)


_COLUMNS = tuple(NOTIFICATIONS.columns)


@dataclass
class Sender:
    db: ViewDB
    directory: Directory
    clock: Callable[[], datetime]
    group_webhook: str | None = None
    webhook_format: str = "wecom"  # wecom | json: the body posted to webhooks
    wecom: WeComApp | None = None
    http: HttpWebhook = field(default_factory=HttpWebhook)
    leads: Leads = field(default_factory=Leads)
    max_attempts: int = 5
    backoff: float = 2.0  # seconds before the 2nd attempt; doubled each time after
    max_age: timedelta = timedelta(days=1)
    lease: timedelta = timedelta(seconds=60)
    batch_size: int = 50
    on_failed: Callable[[dict[str, Any], str, int], None] | None = None  # a dead letter
    metrics: Metrics | None = None
    delivered: int = 0
    failed: int = 0

    def due(self) -> list[str]:
        """Ids whose time has come (a deadline's lead before it), oldest first."""
        now = self.clock()
        d = self.db.dialect
        rows = self.db.query(
            f"SELECT n.notification_id FROM {NOTIFICATIONS.name} n "
            f"LEFT JOIN {DELIVERY} d ON d.notification_id = n.notification_id "
            "WHERE n.cancelled = %s AND ((n.kind = 'follow_up_due' AND n.due_at <= %s) "
            "OR (n.kind = 'protection_expiring' AND n.due_at <= %s) "
            "OR (n.kind NOT IN ('follow_up_due', 'protection_expiring') AND n.due_at <= %s)) "
            "AND (d.notification_id IS NULL OR (d.status IN ('pending', 'sending') "
            "AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= %s) "
            "AND (d.lease_until IS NULL OR d.lease_until <= %s))) "
            "ORDER BY n.due_at LIMIT %s",
            (
                False if d == "postgres" else 0,
                ts(d, now + self.leads.due),
                ts(d, now + self.leads.protection),
                ts(d, now),
                ts(d, now),
                ts(d, now),
                self.batch_size,
            ),
        )
        return [str(r[0]) for r in rows]

    def run_once(self) -> int:
        """Try every notification due now; the number of attempts made."""
        return sum(self.attempt(nid) for nid in self.due())

    # --------------------------------------------------------------- one

    def attempt(self, nid: str) -> int:
        claimed = self._claim(nid)
        if claimed is None:
            return 0
        row, attempts = claimed
        recipient = self.directory.contact(row["recipient_id"]) if row["recipient_id"] else None
        try:
            channel = self._deliver(row, recipient)
        except DeliveryError as exc:
            self._failed(row, attempts, str(exc))
            return 1
        if channel is None:
            log.info("notification %s (%s) has no channel: logged", nid, row["kind"])
            self._finish(nid, "unroutable", attempts, None, "no channel configured")
            return 1
        self._finish(nid, "sent", attempts, channel, None)
        self.delivered += 1
        if self.metrics is not None:
            self.metrics.reminders_sent.inc()
        return 1

    def _claim(self, nid: str) -> tuple[dict[str, Any], int] | None:
        d = self.db.dialect
        now = self.clock()
        with self.db.transaction() as tx:
            tx.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM {NOTIFICATIONS.name} "
                "WHERE notification_id = %s",
                (nid,),
            )
            found = tx.fetchone()
            if found is None:
                return None
            row = NOTIFICATIONS.from_db(found)
            tx.execute(
                f"INSERT INTO {DELIVERY} (notification_id, status, attempts, updated_at) "
                "VALUES (%s, 'pending', 0, %s) ON CONFLICT (notification_id) DO NOTHING",
                (nid, ts(d, now)),
            )
            claimed = tx.execute(
                f"UPDATE {DELIVERY} SET status = 'sending', lease_until = %s, updated_at = %s "
                "WHERE notification_id = %s AND status IN ('pending', 'sending') "
                "AND (next_attempt_at IS NULL OR next_attempt_at <= %s) "
                "AND (lease_until IS NULL OR lease_until <= %s)",
                (ts(d, now + self.lease), ts(d, now), nid, ts(d, now), ts(d, now)),
            )
            if claimed.rowcount != 1:
                return None  # another sender holds it, or it is done
            tx.execute(f"SELECT attempts FROM {DELIVERY} WHERE notification_id = %s", (nid,))
            attempts = int(tx.fetchone()[0]) + 1
            if row["cancelled"]:
                self._close(tx, nid, "cancelled", attempts - 1, None, None)
                return None
            fire_at = row["due_at"] - self.leads.of(row["kind"])
            if attempts == 1 and now - fire_at > self.max_age:
                self._close(tx, nid, "stale", 0, None, "came due too long ago")
                return None
            tx.execute(
                f"UPDATE {DELIVERY} SET attempts = %s WHERE notification_id = %s", (attempts, nid)
            )
        return row, attempts

    def _deliver(self, row: dict[str, Any], recipient: Contact | None) -> str | None:
        """Post by the person's own channel, else the group's; the channel used."""
        message = render(row, self._name)
        nid = row["notification_id"]
        person = recipient if recipient is not None and recipient.active else None
        if person is not None and person.wecom_user_id and self.wecom is not None:
            self.wecom.send(person.wecom_user_id, message.markdown(), nid)
            return "wecom_app"
        if person is not None and person.notify_webhook:
            self.http.post(person.notify_webhook, self._body(row, message, person, None), nid)
            return "webhook"
        if self.group_webhook:
            named = Message(
                message.title,
                [f"接收人：{recipient.name if recipient else '—'}", *message.lines],
            )
            mention = person.wecom_user_id if person is not None else None
            self.http.post(self.group_webhook, self._body(row, named, recipient, mention), nid)
            return "group"
        return None

    def _body(
        self, row: dict[str, Any], message: Message, who: Contact | None, mention: str | None
    ) -> dict[str, Any]:
        if self.webhook_format == "json":
            return plain_json(row, message, who)
        return wecom_robot(message, mention)

    def _name(self, principal_id: str | None) -> str:
        if not principal_id:
            return "—"
        found = self.directory.contact(principal_id)
        return found.name if found is not None else principal_id

    def _failed(self, row: dict[str, Any], attempts: int, error: str) -> None:
        nid = row["notification_id"]
        if attempts >= self.max_attempts:
            self._finish(nid, "failed", attempts, None, error)
            self.failed += 1
            if self.metrics is not None:
                self.metrics.reminders_dead_lettered.inc()
            if self.on_failed is not None:
                self.on_failed(row, error, attempts)
            return
        wait = timedelta(seconds=self.backoff * 2 ** (attempts - 1))
        d = self.db.dialect
        with self.db.transaction() as tx:
            tx.execute(
                f"UPDATE {DELIVERY} SET status = 'pending', lease_until = NULL, "
                "next_attempt_at = %s, last_error = %s, updated_at = %s "
                "WHERE notification_id = %s",
                (ts(d, self.clock() + wait), error[:500], ts(d, self.clock()), nid),
            )

    def _finish(
        self, nid: str, status: str, attempts: int, channel: str | None, error: str | None
    ) -> None:
        with self.db.transaction() as tx:
            self._close(tx, nid, status, attempts, channel, error)

    def _close(
        self,
        tx: Tx,
        nid: str,
        status: str,
        attempts: int,
        channel: str | None,
        error: str | None,
    ) -> None:
        d = self.db.dialect
        now = ts(d, self.clock())
        tx.execute(
            f"UPDATE {DELIVERY} SET status = %s, attempts = %s, channel = %s, "
            "last_error = %s, lease_until = NULL, next_attempt_at = NULL, updated_at = %s, "
            "sent_at = CASE WHEN %s = 'sent' THEN %s ELSE sent_at END "
            "WHERE notification_id = %s",
            (status, attempts, channel, error and error[:500], now, status, now, nid),
        )


def sender_from(
    settings: Settings,
    db: ViewDB,
    directory: Directory,
    clock: Callable[[], datetime],
    metrics: Metrics | None = None,
) -> Sender:
    """The sender the settings describe (README: Configuration, notifications)."""
    from domain.values import parse_duration

    wecom = None
    if settings.wecom_corp_id and settings.wecom_corp_secret and settings.wecom_agent_id:
        wecom = WeComApp(
            settings.wecom_api_base,
            settings.wecom_corp_id,
            settings.wecom_corp_secret,
            settings.wecom_agent_id,
            clock,
        )
    return Sender(
        db,
        directory,
        clock,
        group_webhook=settings.notify_webhook,
        webhook_format=settings.notify_webhook_format,
        wecom=wecom,
        leads=Leads(
            due=parse_duration(settings.reminder_due_lead, "YINGKE_REMINDER_DUE_LEAD"),
            protection=parse_duration(
                settings.reminder_protection_lead, "YINGKE_REMINDER_PROTECTION_LEAD"
            ),
        ),
        max_attempts=settings.reminder_max_attempts,
        backoff=settings.reminder_backoff,
        max_age=parse_duration(settings.notify_max_age, "YINGKE_NOTIFY_MAX_AGE"),
        metrics=metrics,
    )
