"""The evidence bundle (证据包) of one buyer: everything an arbiter needs in one answer.

It is assembled from the buyer's own stream, replayed once in order: every event with
its time, actor and request id (personal data masked, as ``history`` shows it), the owner
after each decision and the rule that decided it, the full text of every policy version
those decisions applied, the reports that competed and why each lost, the disputes and
their rulings, and, per event, the chain entry written with it plus the signed
checkpoint that covers the last one (ADR 0035). Who may see which part is the API's
business (``api.evidence_views``); this module answers everything.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from domain.client import Client, no_owner
from domain.policy import Policy, ProjectPolicy
from domain.sealing import SEALED
from domain.services.clients import Loaded, plain, plain_dict
from domain.values import ERASED_PHONE_MASK
from yingke.bootstrap import Container
from yingke.chain import ChainRow, checkpoint_message, seal, stream_links

BUNDLE_VERSION = 1
# The kinds of event a party's view leaves out of its bundle (api.evidence_views), and so
# the only kinds `yingke verify --bundle` accepts as a declared gap.
WITHHELD_FROM_PARTIES = frozenset({"ContactDisclosed"})

# What an ownership decision is judged on; a change in any of these is a new decision.
_OWNER_FIELDS = ("status", "consultant_id", "partner_id", "report_id", "basis")
# Events that decide even when the owner stays: a dismissed claim is still a ruling.
_ALWAYS_DECISIONS = {"DisputeRuled", "ReportRejected", "ReportClosed", "MaskedReportPassedOver"}

# Why a report did not win, in the words an arbiter reads (codes from domain.attribution).
LOSS_REASONS = {
    "duplicate": "重复报备：同一渠道已有有效报备，或客户已由该渠道保护",
    "protected": "客户处于他人保护期（或先报先得规则下已有有效报备）",
    "masked_not_allowed": "本项目不接受隐号报备",
    "lost_to_earlier_report": "到访时另一份有效报备更早",
    "lost_to_accompanied_visit": "带看优先：另一渠道陪同到访",
    "superseded_by_own_report": "被本渠道另一份更早的报备取代",
    "expired": "报备有效期内客户未到访",
}
REPORT_OUTCOMES = {
    "confirmed": "胜出：到访确认此报备",
    "accepted": "有效，尚待到访",
    "filed": "已提交",
}


def build_bundle(
    app: Container,
    client_id: uuid.UUID,
    at: datetime | None = None,
    *,
    reveal: bool = False,
    claims: Collection[str] = (),
    author: str | None = None,
    whole: Loaded | None = None,
) -> dict[str, Any]:
    """The bundle as of ``at`` (default now): events recorded up to that instant; free
    text opened when ``reveal`` (a reader of notes, ADR 0045), else ``[sealed]``, except
    the claim of each dispute in ``claims``, opened for its own claimant (as
    ``GET /v1/disputes/{id}`` opens it), and nothing else of that dispute, and what
    ``author`` (a principal id) wrote in a dispute. ``whole``: the buyer with every event
    of its stream (``base`` 0) as the caller read it, else read here.

    The stream is read once (chain-checked) and everything is taken from that read: the
    buyer now, the timeline, the owner at ``at`` and the disputes' words (it was read
    five to seven times, once per part)."""
    moment = at if at is not None else app.clock()
    if whole is None or whole.base != 0:
        whole = app.clients.whole(client_id)  # NotFound for an unknown buyer
    current = whole.client
    # Erasure is judged now, not at ``at``: an erased buyer's mask never leaves again.
    erased = current.erased
    events = [e for e in whole.events if e.timestamp <= moment]
    links = {row.version: row for row in stream_links(app.store.recorder, client_id)}
    policies = app.clients.uow.find(ProjectPolicy, ProjectPolicy.create_id(current.project_id))
    passed_over: dict[str, str] = {}

    timeline: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    state: Any = None
    owners: list[dict[str, Any]] = []
    for event in events:
        state = event.mutate(state)
        gone = current.text_erased(event.originator_version)  # a returned buyer's old text
        entry = app.clients.describe(client_id, event, reveal=reveal, erased=gone)
        if gone and "phone_masked" in entry["data"]:
            entry["data"]["phone_masked"] = ERASED_PHONE_MASK
        entry["request_id"] = entry.pop("correlation_id")
        entry["chain"] = _link(links.get(event.originator_version))
        timeline.append(entry)
        assert isinstance(state, Client)
        owners.append(plain_dict(state.ownership_at(event.timestamp)))
    # One command records several events at one instant (a visit: the report confirmed,
    # then the buyer awarded); an owner seen only between two of them never held at any
    # instant, so it is no decision.
    settled = list(owners)
    for index in range(len(events) - 2, -1, -1):
        if _same_command(events[index], events[index + 1]):
            settled[index] = settled[index + 1]

    previous = no_owner()
    for event, owner, final in zip(events, owners, settled, strict=True):
        kind = type(event).__name__
        if kind == "MaskedReportPassedOver":
            passed_over[event.report_id] = event.reason
        transient = any(owner[f] != final[f] for f in _OWNER_FIELDS)
        if transient:
            # A ruling or a rejection in the middle of its command decided without moving
            # the buyer yet: it stands with the owner the command found.
            owner = previous
        changed = any(owner[f] != previous[f] for f in _OWNER_FIELDS)
        if changed or kind in _ALWAYS_DECISIONS:
            version = owner["policy_version"]
            if version is None:
                version = _in_force(policies, event.timestamp)
            decisions.append(
                {
                    "version": event.originator_version,
                    "type": kind,
                    "occurred_at": plain(event.timestamp),
                    "owner": owner,
                    "basis": owner["basis"],
                    "policy_version": version,
                    "owner_changed": changed,
                }
            )
            previous = owner

    client: Client | None = state if isinstance(state, Client) else None
    used = sorted({d["policy_version"] for d in decisions} | _report_policies(client))
    last = timeline[-1]["chain"] if timeline else None
    checkpoint = None
    if last is not None:
        cp = seal(app.store.recorder, app.key_dir, last["position"])
        checkpoint = {
            "position": cp.position,
            "log_hash": cp.log_hash.hex(),
            "signed_at": datetime.fromtimestamp(cp.signed_at, UTC).isoformat(),
            "key_id": cp.key_id,
            "algorithm": "Ed25519",
            "message": checkpoint_message(cp.position, cp.log_hash).hex(),
            "signature": base64.b64encode(cp.signature).decode(),
        }
    # The fold of the events up to ``at`` is the replay ``ownership?at=`` makes.
    owner_at = plain_dict(client.ownership_at(moment) if client is not None else no_owner())
    return {
        "bundle_version": BUNDLE_VERSION,
        "client_id": str(client_id),
        "project_id": client.project_id if client else None,
        "phone_masked": ERASED_PHONE_MASK if erased else current.phone_masked,
        "personal_data_erased": bool(client and client.erased),
        "at": moment.isoformat(),
        "generated_at": app.clock().isoformat(),
        "owner_at": {
            "owner": owner_at,
            "decided_by_version": owner_at["decided_by_version"],
            "policy_version": owner_at["policy_version"],
        },
        "timeline": timeline,
        "withheld_versions": [],  # versions a reader's view leaves out (api.evidence_views)
        "decisions": decisions,
        "policies": [_policy_text(policies, v) for v in used],
        "reports": _reports(client, moment, passed_over) if client else [],
        "disputes": (
            _disputes(app, client, current, reveal, claims, author, timeline) if client else []
        ),
        "chain": {
            "stream": str(client_id),
            "events": len(timeline),
            "head_version": timeline[-1]["version"] if timeline else 0,
            "head_hash": last["hash"] if last else None,
            "verified": True,  # the stream was re-read through the chain check above
        },
        "checkpoint": checkpoint,
        "verification": verification(),
    }


def verification() -> dict[str, Any]:
    """How anyone checks a bundle; printed on the PDF too."""
    return {
        "keys": "/v1/receipts/keys",
        "command": "yingke verify --bundle <本文件>",
        "steps": [
            "在服务器上运行 `yingke verify --bundle <本证据包的 PDF 或 JSON 文件>`：先重新计算"
            "每条事件的哈希链、日志链与每个签名检查点，再逐条核对：本证据包印出的 position、hash、"
            "prev 正是经重新计算确认的链上记录；每条事件所列的类型、版本与时间正是库中该位置所存"
            "事件解码后的类型、版本与时间；版本 1 至 n 无遗漏，仅本视图声明未列出的版本除外，且"
            "每个未列出的版本在库中确为当事方视图可省略的类型（ContactDisclosed）；并用密钥目录"
            "验证检查点签名。退出码 0 表示一致，1 表示不一致并指出首个不符之处。"
            "不核对的内容：事件内容、判定、报备与争议等文字是服务器对上述事件的呈现，"
            "由这些事件推出，但此命令不逐字比对。",
            "用 GET /v1/receipts/keys 公布的 Ed25519 公钥（按 key_id 查找）验证检查点签名："
            "签名对象为 message 字段（十六进制）= b'yingke-checkpoint-v1' ‖ 位置(8 字节大端) "
            "‖ log_hash。",
            "检查点的 position 不小于本证据包最后一条事件的 position，因此它的 log_hash "
            "覆盖了本证据包的全部事件。",
        ],
    }


def _same_command(event: Any, following: Any) -> bool:
    return bool(
        event.timestamp == following.timestamp
        and getattr(event, "correlation_id", None) is not None
        and getattr(event, "correlation_id", None) == getattr(following, "correlation_id", None)
    )


def _link(row: ChainRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "position": row.position,
        "prev_hash": row.prev_hash.hex(),
        "hash": row.hash.hex(),
        "log_hash": row.log_hash.hex(),
    }


def _in_force(stream: ProjectPolicy | None, moment: datetime) -> int:
    """The version a decision without a recorded one ran under: the last set before it."""
    if stream is None:
        return 0
    version = 0
    for index, (_, since) in enumerate(stream.versions, start=1):
        if since <= moment:
            version = index
    return version


def _report_policies(client: Client | None) -> set[int]:
    return {r.policy_version for r in client.reports.values()} if client else set()


def _policy_text(stream: ProjectPolicy | None, version: int) -> dict[str, Any]:
    if stream is None or version == 0:
        value, since = Policy(), None
    else:
        value, since = stream.at_version(version), stream.changed_at(version)
    return {
        "version": version,
        "since": since.isoformat() if since else None,
        "defaults": version == 0,
        "settings": value.settings(),
    }


def _reports(client: Client, moment: datetime, passed_over: dict[str, str]) -> list[dict[str, Any]]:
    """Every report that competed for the buyer, the winner first, and why each lost."""
    out = []
    for r in client.reports.values():
        status = r.status_at(moment)
        reason = r.reason or ("expired" if status == "expired" else None)
        out.append(
            {
                "report_id": r.report_id,
                "partner_id": r.partner_id,
                "agent_id": r.agent_id,
                "masked": r.masked,
                "filed_at": r.filed_at.isoformat(),
                "valid_until": r.valid_until.isoformat() if r.valid_until else None,
                "status": status,
                "won": status == "confirmed",
                "reason": reason,
                "explanation": LOSS_REASONS.get(reason or "")
                or REPORT_OUTCOMES.get(status, status),
                "filed_version": r.filed_version,
                "decided_version": r.decided_version,
                "policy_version": r.policy_version,
            }
        )
    for report_id, why in sorted(passed_over.items()):
        # A masked report matched this buyer's pattern but lost at the visit; its
        # partner stays in the pattern's pool stream, not in this one.
        out.append(
            {
                "report_id": report_id,
                "partner_id": None,
                "agent_id": None,
                "masked": True,
                "filed_at": None,
                "valid_until": None,
                "status": "passed_over",
                "won": False,
                "reason": why,
                "explanation": LOSS_REASONS.get(why, why),
                "filed_version": None,
                "decided_version": None,
                "policy_version": None,
            }
        )
    out.sort(key=lambda r: (not r["won"], r["filed_at"] or ""))
    return out


def _open_in_timeline(
    timeline: list[dict[str, Any]], dispute_id: str, texts: dict[str, Any]
) -> None:
    """Put the places of a dispute opened for this reader into its timeline events."""
    for entry in timeline:
        if entry["data"].get("dispute_id") != dispute_id:
            continue
        place = {
            "DisputeOpened": f"dispute:{dispute_id}",
            "DisputeRuled": f"ruling:{entry['version']}",
            "DisputeAppealed": f"appeal:{dispute_id}",
        }.get(entry["type"])
        if place in texts:
            entry["data"]["reason"] = texts[place]


def _disputes(
    app: Container,
    client: Client,
    current: Client,
    reveal: bool,
    claims: Collection[str],
    author: str | None,
    timeline: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each dispute with its words opened for a reader of notes, else ``[sealed]``; a
    claim in ``claims``, and what ``author`` wrote, opened alone, here and in the
    timeline's events of the dispute. The words are opened from ``current`` (the buyer
    now), as ``GET /v1/disputes/{id}`` opens them, not read again."""
    found: list[dict[str, Any]] = []
    for d in client.disputes.values():
        texts = app.disputes.view(current, d.dispute_id, reveal, author).texts
        if not reveal and d.dispute_id in claims:
            place = f"dispute:{d.dispute_id}"
            opened = app.disputes.view(current, d.dispute_id, reveal=True).texts or {}
            texts = {**(texts or {}), place: opened.get(place)}  # no ruling, no appeal
        if not reveal and texts:
            _open_in_timeline(timeline, d.dispute_id, texts)

        def text(place: str, texts: dict[str, Any] | None = texts) -> Any:
            return SEALED if texts is None else texts.get(place, SEALED)

        rulings = [{**r, "reason": text(f"ruling:{r['version']}")} for r in d.rulings]
        appeal = d.appeal
        if appeal is not None:
            appeal = {**appeal, "reason": text(f"appeal:{d.dispute_id}")}
        found.append(
            plain(
                {
                    "dispute_id": d.dispute_id,
                    "claimant_kind": d.claimant_kind,
                    "claimant_id": d.claimant_id,
                    "report_id": d.report_id,
                    "reason": text(f"dispute:{d.dispute_id}"),
                    "evidence_versions": d.evidence_versions,
                    "status": d.status,
                    "opened_by": d.opened_by,
                    "opened_at": d.opened_at,
                    "opened_version": d.opened_version,
                    "owner_at_opening": d.owner_at_opening,
                    "rulings": rulings,
                    "appeal": appeal,
                }
            )
        )
    return found
