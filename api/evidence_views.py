"""Who may read a buyer's evidence bundle, and what a party to a dispute sees of it.

Auditors and admins see every bundle, managers those of their projects. A consultant or
a channel sees the bundle only as a party to a dispute over the buyer (claimant, or the
side owning the buyer when it was opened), and then as ``api.dispute_views`` shows a
dispute: its own people, reports and claim, never the other side's consultant, partner,
agent or report, nor the rulings' reasoning that cites them. Times, event types, policy
texts and chain hashes stay: the party can still check the record was not rewritten.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import HTTPException

from api.authorization import SEES_DISCLOSURES, SEES_WHOLE_BUNDLE
from api.deps import Caller
from api.dispute_views import for_caller
from yingke.evidence import WITHHELD_FROM_PARTIES

# Fields that name a person, a channel or a report: redacted unless the caller's own.
_IDENTITY = re.compile(r"(consultant|partner|agent|claimant|manager)_id$|^report_id$|_by$")
_PRIVATE = ("profile", "fields")  # the demand profile is for the people serving the buyer
_HIDDEN = "（对方信息，已隐去）"


def party_ids(bundle: dict[str, Any], caller: Caller) -> set[str] | None:
    """The caller's own identities if they are a party to a dispute here, else None."""
    own = {caller.id}
    if caller.role == "channel_agent" and caller.partner_id:
        own = {caller.partner_id}
    for dispute in bundle["disputes"]:
        sides = {dispute.get("claimant_id")}
        opening = dispute.get("owner_at_opening") or {}
        sides |= {opening.get("consultant_id"), opening.get("partner_id")}
        if own & sides:
            return own
    return None


def for_reader(
    bundle: dict[str, Any], caller: Caller, standing: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The bundle this caller may read; 404 (not 403) so a bundle's existence is not told.

    ``standing`` holds the disputes of the record now (``{"disputes": [...]}``): who is a
    party is judged on them, since a bundle as of an earlier instant may predate the
    dispute it is wanted for."""
    if caller.role in SEES_WHOLE_BUNDLE:
        # Auditors and admins cover every project; a manager only the granted ones.
        if not caller.covers(bundle["project_id"]):
            raise HTTPException(404, "client not found")
        return {**bundle, "view": "full"}
    own = party_ids(standing or bundle, caller)
    if own is None:
        raise HTTPException(404, "client not found")
    return _party_view(bundle, caller, own)


def _party_view(bundle: dict[str, Any], caller: Caller, own: set[str]) -> dict[str, Any]:
    reports = [r for r in bundle["reports"] if r["partner_id"] in own]
    own_reports = {r["report_id"] for r in reports}
    # A channel's own agents (the caller, and whoever filed its reports) are its side too,
    # not "the other side's" people.
    own_agents = {r["agent_id"] for r in reports if r["agent_id"]} | {caller.id}
    mine = own | own_reports | own_agents

    claimants = {d["dispute_id"]: d.get("claimant_id") for d in bundle["disputes"]}
    timeline = []
    withheld = []  # declared, so `yingke verify --bundle` tells a gap it may accept
    for entry in bundle["timeline"]:
        if entry["type"] in WITHHELD_FROM_PARTIES and caller.role not in SEES_DISCLOSURES:
            withheld.append(entry["version"])
            continue
        data = _redact(entry["data"], mine)
        if entry["type"] == "DisputeRuled":
            data["reason"] = None
        dispute = entry["data"].get("dispute_id")
        wrote = (entry.get("actor") or {}).get("id") == caller.id  # its own words
        if dispute is not None and claimants.get(dispute) not in own and "reason" in data:
            # The other side's claim, and what a ruling on it moved, in its own words.
            data["reason"] = data["reason"] if wrote and entry["type"] != "DisputeRuled" else None
        timeline.append({**entry, "actor": _actor(entry.get("actor"), mine), "data": data})
    decisions = [{**d, "owner": _redact(d["owner"], mine)} for d in bundle["decisions"]]
    owner_at = {**bundle["owner_at"], "owner": _redact(bundle["owner_at"]["owner"], mine)}
    disputes = [for_caller(d, caller) for d in bundle["disputes"]]
    return {
        **bundle,
        "view": "party",
        "timeline": timeline,
        "withheld_versions": withheld,
        "decisions": decisions,
        "owner_at": owner_at,
        "reports": reports,
        "disputes": disputes,
    }


def _actor(actor: Any, mine: set[str]) -> Any:
    if not isinstance(actor, dict):
        return actor
    return {**actor, "id": actor.get("id") if actor.get("id") in mine else _HIDDEN}


def _redact(data: dict[str, Any], mine: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _PRIVATE:
            continue
        if _IDENTITY.search(key):
            if isinstance(value, dict):
                value = _actor(value, mine)
            elif value is not None and value not in mine:
                value = _HIDDEN
        elif isinstance(value, dict):
            value = _redact(value, mine)
        out[key] = value
    return out
