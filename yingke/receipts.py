"""Report receipts (回执): what a channel keeps to prove its report later, offline.

A receipt is ``{payload, signature, key_id, phone_salt}``:
- ``payload``: canonical JSON (keys sorted, no spaces, UTF-8) of the report's facts and the
  chain hash of the event that decided it;
- ``signature``: Ed25519 over the payload's UTF-8 bytes, base64; ``key_id`` names the
  public key in ``GET /v1/receipts/keys``;
- the phone is committed, never included: ``phone_commitment`` = SHA-256 over a tag, a
  16-byte salt (derived per report with the server's secret) and the normalized number.
  The salt is handed to the filing channel only (``phone_salt``, outside the signed
  payload): the channel, who knows the number, recomputes the commitment; anyone holding
  only the payload faces a 128-bit unknown salt, so the small space of mobile numbers
  cannot be searched (ADR 0037).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from eventsourcing.application import Application

from domain.locator import ReportLocator, locator_id
from domain.values import PhoneKeyer, normalize_phone, parse_masked_phone
from yingke.chain import ChainBroken, chain_hash, find_by_hash, stream_integrity
from yingke.keys import KeyDir

RECEIPT_VERSION = 1
_DECISIONS = ("ReportAccepted", "ReportRejected", "MaskedReportMatched", "ReportFiled")


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def phone_commitment(phone: str, salt: bytes) -> str:
    return hashlib.sha256(b"yingke-phone-v1\x00" + salt + phone.encode()).hexdigest()


def _phone_form(raw: str) -> str:
    masked = parse_masked_phone(raw)
    return masked if masked is not None else normalize_phone(raw)


def _decision_event(
    app: Application,  # type: ignore[type-arg]
    report_id: str,
) -> tuple[uuid.UUID, int]:
    """The stream and version of the event that recorded the report's outcome."""
    locator: Any = app.repository.get(locator_id(report_id))
    assert isinstance(locator, ReportLocator)
    found: tuple[int, int] | None = None
    for event in app.events.get(locator.stream_id):
        if getattr(event, "report_id", None) != report_id:
            continue
        rank = _DECISIONS.index(type(event).__name__) if type(event).__name__ in _DECISIONS else 9
        if found is None or rank < found[0]:
            found = (rank, event.originator_version)
    if found is None:
        raise LookupError(f"no event records report {report_id}")
    return locator.stream_id, found[1]


def _decided_in(recorded: Sequence[Any], report_id: str) -> tuple[uuid.UUID, int] | None:
    """As ``_decision_event``, among the events the filing's own save just wrote.

    A fresh report's id is new, so every event about it is in that save; the ranking is
    the same. None if the save wrote no decision of this report (a replay wrote nothing).
    """
    found: tuple[int, uuid.UUID, int] | None = None
    for event in recorded:
        name = type(event).__name__
        if name not in _DECISIONS or getattr(event, "report_id", None) != report_id:
            continue
        rank = _DECISIONS.index(name)
        if found is None or rank < found[0]:
            found = (rank, event.originator_id, event.originator_version)
    return None if found is None else (found[1], found[2])


def issue(
    app: Application,  # type: ignore[type-arg]
    keys: KeyDir,
    keyer: PhoneKeyer,
    body: dict[str, Any],
    phone: str,
    recorded: Sequence[Any] = (),
) -> dict[str, Any]:
    """The signed receipt of a filed report. ``recorded``: the domain events the filing's
    save wrote in this thread; the hash of the deciding event is then taken from that
    save (ADR 0061) instead of reading the locator, the stream and the chain entry."""
    digest: bytes | None = None
    decided = _decided_in(recorded, str(body["report_id"]))
    if decided is not None and hasattr(app.recorder, "written_hash"):
        digest = app.recorder.written_hash(*decided)
    if digest is None:
        stream, version = _decision_event(app, str(body["report_id"]))
        digest = chain_hash(app.recorder, stream, version)
    assert digest is not None
    # Derived, not random: an idempotent replay answers the very same receipt, and only
    # a holder of YINGKE_SECRET could re-derive it (the server knows the phone anyway).
    salt = bytes.fromhex(keyer.digest(f"receipt-salt:{body['report_id']}"))[:16]
    payload = canonical(
        {
            "v": RECEIPT_VERSION,
            "report_id": body["report_id"],
            "project_id": body["project_id"],
            "partner_id": body["partner_id"],
            "agent_id": body["agent_id"],
            "phone_commitment": phone_commitment(_phone_form(phone), salt),
            "filed_at": body["filed_at"],
            "status": body["status"],
            "reason": body.get("reason"),
            "valid_until": body.get("valid_until"),
            "policy_version": body["policy_version"],
            "event_hash": digest.hex(),
        }
    )
    key_id, private = keys.signing_key()
    return {
        "payload": payload,
        "signature": base64.b64encode(private.sign(payload.encode())).decode(),
        "key_id": key_id,
        "phone_salt": base64.b64encode(salt).decode(),
    }


def published_keys(keys: KeyDir) -> list[dict[str, Any]]:
    def iso(ts: float | None) -> str | None:
        return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None

    return [
        {
            "key_id": k.key_id,
            "algorithm": "Ed25519",
            "public_key": k.public_key,
            "valid_from": iso(k.valid_from),
            "valid_until": iso(k.valid_until),
        }
        for k in keys.signing_keys()
    ]


def verify(
    app: Application,  # type: ignore[type-arg]
    keys: KeyDir,
    receipt: dict[str, Any],
    phone: str | None = None,
) -> dict[str, Any]:
    """Signature, key validity at filing, the event still in an intact chain, the phone."""
    out: dict[str, Any] = {
        "valid": False,
        "signature_valid": False,
        "in_chain": False,
        "phone_matches": None,
        "reason": None,
    }
    public = keys.public_key(str(receipt.get("key_id")))
    if public is None:
        return {**out, "reason": "unknown_key"}
    try:
        public.verify(base64.b64decode(receipt["signature"]), str(receipt["payload"]).encode())
    except (InvalidSignature, binascii.Error, ValueError):
        return {**out, "reason": "bad_signature"}
    out["signature_valid"] = True
    payload = json.loads(receipt["payload"])
    if phone is not None and receipt.get("phone_salt"):
        salt = base64.b64decode(receipt["phone_salt"])
        out["phone_matches"] = payload["phone_commitment"] == phone_commitment(
            _phone_form(phone), salt
        )
    located = find_by_hash(app.recorder, bytes.fromhex(payload["event_hash"]))
    if located is None:
        return {**out, "reason": "event_not_in_chain"}
    stream, version, _ = located
    try:
        stream_integrity(app.recorder, stream, upto=version)
    except ChainBroken:
        return {**out, "reason": "integrity_failure"}
    out["in_chain"] = True
    out["position"] = located[2]
    out["valid"] = out["phone_matches"] is not False
    if not out["valid"]:
        out["reason"] = "phone_mismatch"
    return out
