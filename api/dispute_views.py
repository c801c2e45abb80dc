"""What each side of a dispute may see of it.

A party (the channel or the consultant who claims, or the consultant it is claimed
from) sees its own claim, the status and the outcome, never the other side: no owner,
partner, consultant or report of the competitor, and not the ruling's reasoning, which
cites the other side's evidence; an appeal only if the caller wrote it. Staff who
supervise or rule, and auditors, see all.
"""

from __future__ import annotations

from typing import Any

from api.authorization import SEES_WHOLE_DISPUTE
from api.deps import Caller

_OWN_CLAIM = (
    "dispute_id",
    "client_id",
    "project_id",
    "claimant_kind",
    "claimant_id",
    "report_id",
    "reason",
    "evidence_versions",
    "status",
    "opened_at",
)


def for_caller(dispute: dict[str, Any], caller: Caller) -> dict[str, Any]:
    if caller.role in SEES_WHOLE_DISPUTE:
        return dispute
    mine = caller.id == dispute.get("claimant_id") or (
        caller.role == "channel_agent" and caller.partner_id == dispute.get("claimant_id")
    )
    out = {k: dispute.get(k) for k in _OWN_CLAIM}
    if not mine:
        # The side claimed against sees that a claim exists, not who makes it or why.
        out.update(claimant_id=None, report_id=None, reason=None, evidence_versions=[])
    out["rulings"] = [
        {"outcome": r.get("outcome"), "final": r.get("final"), "ruled_at": r.get("ruled_at")}
        for r in dispute.get("rulings", [])
    ]
    appeal = dispute.get("appeal")
    out["appealed"] = appeal is not None
    if appeal is not None and (appeal.get("appealed_by") or {}).get("id") == caller.id:
        # Its author reads its own appeal (api.authorization.READS_OWN_WORDS).
        out["appeal"] = {"reason": appeal.get("reason"), "appealed_at": appeal.get("appealed_at")}
    return out
