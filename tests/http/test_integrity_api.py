"""Over HTTP: history and ownership carry their chain head, a forged row is a problem,
and report receipts verify offline with the published key."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.http.conftest import Api
from tests.http.test_api import PHONE, agent, consultant, report_body


def _owned_client(api: Api) -> tuple[str, dict[str, str], dict[str, object]]:
    a_id, a = agent(api, "partner-a")
    c_id, c = consultant(api)
    filed = api.client.post("/v1/reports", json=report_body(api, "partner-a", a_id), headers=a)
    assert filed.status_code == 201, filed.text
    visit = api.client.post(
        "/v1/visits",
        json={
            "project_id": api.project,
            "phone": PHONE,
            "client_name": "王小明",
            "consultant_id": c_id,
        },
        headers=c,
    )
    assert visit.status_code == 201, visit.text
    return visit.json()["client_id"], c, filed.json()


def test_history_and_ownership_answer_with_their_chain_head(api: Api) -> None:
    client_id, c, _ = _owned_client(api)
    history = api.client.get(f"/v1/clients/{client_id}/history", headers=c).json()
    ownership = api.client.get(f"/v1/clients/{client_id}/ownership", headers=c).json()
    assert history["integrity"]["verified"] is True
    assert len(history["integrity"]["head_hash"]) == 64
    assert history["integrity"]["version"] == history["events"][-1]["version"]
    assert ownership["integrity"] == history["integrity"]


def test_a_forged_owner_is_a_problem_not_an_answer(api: Api) -> None:
    client_id, c, _ = _owned_client(api)
    path = api.container.settings.sqlite_path
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT rowid, state FROM stored_events WHERE originator_id = ? "
            "AND topic LIKE '%OwnershipAwarded'",
            (client_id.replace("-", ""),),
        ).fetchall()
        state = json.loads(rows[0][1])
        state["partner_id"] = "partner-forger"
        conn.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?",
            (json.dumps(state).encode(), rows[0][0]),
        )
    for path_tail in ("history", "ownership", ""):
        url = f"/v1/clients/{client_id}/{path_tail}".rstrip("/")
        response = api.client.get(url, headers=c)
        assert response.status_code == 500, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "integrity_failure"
        assert problem["stream"] == client_id
        assert "partner-forger" not in response.text
    metrics = api.client.get("/metrics").text
    assert "yingke_integrity_failures_total" in metrics
    count = next(
        line for line in metrics.splitlines() if line.startswith("yingke_integrity_failures_total")
    )
    assert float(count.split()[-1]) >= 3


def _verify_offline(
    receipt: dict[str, str], keys: list[dict[str, str]], phone: str
) -> dict[str, Any]:
    """What the README shows a channel doing: no call to Yingke, only `cryptography`."""
    key = next(k for k in keys if k["key_id"] == receipt["key_id"])
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"]))
    public.verify(base64.b64decode(receipt["signature"]), receipt["payload"].encode())
    payload: dict[str, Any] = json.loads(receipt["payload"])
    salt = base64.b64decode(receipt["phone_salt"])
    commitment = hashlib.sha256(b"yingke-phone-v1\x00" + salt + phone.encode()).hexdigest()
    assert payload["phone_commitment"] == commitment
    return payload


def test_a_report_receipt_verifies_offline_and_fails_when_one_byte_changes(api: Api) -> None:
    _, _, filed = _owned_client(api)
    receipt = filed["receipt"]
    assert isinstance(receipt, dict)
    keys = api.client.get("/v1/receipts/keys").json()["keys"]
    payload = _verify_offline(receipt, keys, PHONE)
    assert payload["report_id"] == filed["report_id"]
    assert payload["status"] == "accepted" and payload["partner_id"] == "partner-a"
    assert PHONE not in receipt["payload"]

    for index in (0, len(receipt["payload"]) // 2, len(receipt["payload"]) - 1):
        raw = bytearray(receipt["payload"].encode())
        raw[index] ^= 0x01
        forged = {**receipt, "payload": raw.decode(errors="replace")}
        try:
            _verify_offline(forged, keys, PHONE)
            raise AssertionError("a changed byte verified")
        except (InvalidSignature, ValueError):
            pass
        online = api.client.post("/v1/receipts/verify", json={"receipt": forged}).json()
        assert online["valid"] is False and online["reason"] == "bad_signature"

    checked = api.client.post(
        "/v1/receipts/verify", json={"receipt": receipt, "phone": "138 1234 5678"}
    ).json()
    assert checked == {**checked, "valid": True, "in_chain": True, "phone_matches": True}
    wrong = api.client.post(
        "/v1/receipts/verify", json={"receipt": receipt, "phone": "13900000000"}
    ).json()
    assert wrong["valid"] is False and wrong["reason"] == "phone_mismatch"


def test_receipts_stay_verifiable_after_the_signing_key_rotates(api: Api) -> None:
    _, _, filed = _owned_client(api)
    old = filed["receipt"]
    assert isinstance(old, dict)
    new_id, _ = api.container.key_dir.new_signing_key()
    keys = api.client.get("/v1/receipts/keys").json()["keys"]
    assert [k["key_id"] for k in keys][-1] == new_id
    retired = next(k for k in keys if k["key_id"] == old["key_id"])
    assert retired["valid_until"] is not None
    _verify_offline(old, keys, PHONE)
    assert api.client.post("/v1/receipts/verify", json={"receipt": old}).json()["valid"]
    a_id, a = agent(api, "partner-b")
    later = api.client.post(
        "/v1/reports", json=report_body(api, "partner-b", a_id, phone="13700001111"), headers=a
    ).json()
    assert later["receipt"]["key_id"] == new_id


def test_a_receipt_whose_event_was_removed_no_longer_verifies(api: Api) -> None:
    _, _, filed = _owned_client(api)
    receipt = filed["receipt"]
    assert isinstance(receipt, dict)
    digest = bytes.fromhex(json.loads(receipt["payload"])["event_hash"])
    with sqlite3.connect(api.container.settings.sqlite_path) as conn:
        stream, version = conn.execute(
            "SELECT originator_id, originator_version FROM yingke_event_chain WHERE hash = ?",
            (digest,),
        ).fetchone()
        conn.execute(
            "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = ?",
            (stream, version),
        )
    result = api.client.post("/v1/receipts/verify", json={"receipt": receipt}).json()
    assert result["signature_valid"] is True
    assert result["valid"] is False and result["reason"] == "integrity_failure"


def _receipt_of_a_repeated_report(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    a_id, a = agent(api, "partner-a")
    headers = {**a, "Idempotency-Key": "receipt-repeat-1"}
    first = api.client.post(
        "/v1/reports", json=report_body(api, "partner-a", a_id), headers=headers
    )
    again = api.client.post(
        "/v1/reports", json=report_body(api, "partner-a", a_id), headers=headers
    )
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.headers.get("Idempotent-Replayed") == "true"
    return first.json()["receipt"], again.json()["receipt"]


def test_the_receipt_taken_from_the_save_is_the_one_read_back(api: Api) -> None:
    # The first answer signs the chain hash the save computed (ADR 0061); the replay
    # wrote nothing, so it locates the deciding event and reads its hash from the chain.
    fresh, replayed = _receipt_of_a_repeated_report(api)
    assert fresh == replayed
    assert api.client.post("/v1/receipts/verify", json={"receipt": fresh}).json()["valid"]
