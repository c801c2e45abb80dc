"""证据包 over HTTP: what an auditor gets, what each party may see, and a PDF whose hashes
``yingke verify`` confirms and whose checkpoint signature verifies with the published key."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pypdf import PdfReader

from tests.conftest import IN_CI
from tests.http.conftest import ADMIN_KEY, Api
from tests.http.evidence_scenario import Disputed, disputed_buyer
from tests.http.test_aftercare_api import agent, staff
from tests.http.test_postgres_api import SERVER, pg_api
from yingke.chain import checkpoints, stream_links

PDF = {"Accept": "application/pdf"}


@pytest.fixture
def own_database() -> Iterator[str]:
    name = f"yingke_evidence_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{SERVER}/test", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _bundle(api: Api, d: Disputed, headers: dict[str, str], **params: str) -> Any:
    response = api.client.get(f"/v1/clients/{d.client_id}/evidence", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_auditor_gets_the_whole_record_with_its_chain(api: Api) -> None:
    d = disputed_buyer(api)
    _, auditor = api.principal("auditor")
    bundle = _bundle(api, d, auditor)

    assert bundle["view"] == "full"
    history = api.client.get(f"/v1/clients/{d.client_id}/history", headers=auditor).json()
    assert [e["version"] for e in bundle["timeline"]] == [e["version"] for e in history["events"]]
    for entry in bundle["timeline"]:
        assert entry["actor"]["role"] and entry["request_id"] and entry["occurred_at"]
    assert "13812347777" not in str(bundle)  # the number only ever masked
    assert bundle["phone_masked"] == "138****7777"
    # Every event's chain entry is the stored one, and the checkpoint covers the last.
    stored = stream_links(api.container.store.recorder, uuid.UUID(d.client_id))
    assert [e["chain"]["hash"] for e in bundle["timeline"]] == [r.hash.hex() for r in stored]
    assert bundle["chain"]["head_hash"] == stored[-1].hash.hex()
    assert bundle["checkpoint"]["position"] >= stored[-1].position

    # The owner after each decision, and the rule of the day in full.
    kinds = [(x["type"], x["owner"]["partner_id"]) for x in bundle["decisions"]]
    assert ("OwnershipAwarded", "partner-a") in kinds
    assert ("DisputeRuled", "partner-a") in kinds  # the ruling, before the move it orders
    assert kinds[-1] == ("OwnershipTransferred", "partner-b")
    assert bundle["decisions"][-1]["basis"] == "ruling"
    assert [p["version"] for p in bundle["policies"]] == [0]
    assert bundle["policies"][0]["settings"]["judge_rule"] == "report_first"
    # The reports that competed, the winner first, and why the other lost.
    reports = {r["partner_id"]: r for r in bundle["reports"]}
    assert reports["partner-a"]["won"] and bundle["reports"][0]["partner_id"] == "partner-a"
    assert reports["partner-b"]["status"] == "rejected"
    assert reports["partner-b"]["reason"] == "protected"
    assert "保护期" in reports["partner-b"]["explanation"]
    (dispute,) = bundle["disputes"]
    assert dispute["rulings"][0]["outcome"] == "upheld"
    assert dispute["rulings"][0]["reason"] == "带看记录在先"
    assert "yingke verify" in bundle["verification"]["command"]


def test_the_bundle_as_of_an_instant_stops_there(api: Api) -> None:
    d = disputed_buyer(api)
    before = _bundle(api, d, api.admin, at=d.before_ruling.isoformat())
    after = _bundle(api, d, api.admin, at=d.after_ruling.isoformat())

    assert "DisputeRuled" not in [e["type"] for e in before["timeline"]]
    assert before["owner_at"]["owner"]["partner_id"] == "partner-a"
    assert after["owner_at"]["owner"]["partner_id"] == "partner-b"
    assert after["owner_at"]["owner"]["basis"] == "ruling"
    assert before["checkpoint"]["position"] >= before["timeline"][-1]["chain"]["position"]
    bad = api.client.get(
        f"/v1/clients/{d.client_id}/evidence", params={"at": "yesterday"}, headers=api.admin
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"][0]["field"] == "at"


def test_each_party_sees_its_own_side_only(api: Api) -> None:
    d = disputed_buyer(api)
    _, outsider_channel = agent(api, "partner-c")
    _, outsider = staff(api)
    _, supervisor = staff(api, "supervisor")
    _, other_manager = api.principal("manager", project_ids=["proj-elsewhere"])

    claimant = api.client.get(f"/v1/clients/{d.client_id}/evidence", headers=d.partner_b)
    assert claimant.status_code == 200
    body = claimant.json()
    assert body["view"] == "party"
    # Never the other side's partner, consultant or report, nor the ruling's reasoning.
    assert "partner-a" not in claimant.text
    assert d.report_a not in claimant.text
    assert d.owner_id not in claimant.text
    assert "带看记录在先" not in claimant.text
    assert [r["partner_id"] for r in body["reports"]] == ["partner-b"]
    assert body["owner_at"]["owner"]["partner_id"] == "partner-b"
    # The hashes stay: a party can still check the record was not rewritten.
    assert all(len(e["chain"]["hash"]) == 64 for e in body["timeline"])

    claimed_from = api.client.get(f"/v1/clients/{d.client_id}/evidence", headers=d.owner)
    assert claimed_from.status_code == 200
    assert "partner-b" not in claimed_from.text and d.report_b not in claimed_from.text
    assert "我们更早带看" not in claimed_from.text
    assert d.owner_id in claimed_from.text

    for stranger in (outsider_channel, outsider, other_manager):
        response = api.client.get(f"/v1/clients/{d.client_id}/evidence", headers=stranger)
        assert response.status_code == 404, response.text
    refused = api.client.get(f"/v1/clients/{d.client_id}/evidence", headers=supervisor)
    assert refused.status_code == 403
    unknown = api.client.get(f"/v1/clients/{uuid.uuid4()}/evidence", headers=api.admin)
    assert unknown.status_code == 404


def _pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def _field(text: str, name: str) -> str:
    found = re.search(rf"{name} (\S+)", text)
    assert found, name
    return found.group(1)


def test_the_pdf_states_its_hashes_which_yingke_verify_confirms(api: Api) -> None:
    _pdf_matches_verify(api)


@pytest.mark.postgres
def test_on_postgresql_too(tmp_path: Path, own_database: str) -> None:
    for api in pg_api(tmp_path, own_database):
        _pdf_matches_verify(api)


def _pdf_matches_verify(api: Api) -> None:
    d = disputed_buyer(api)
    response = api.client.get(f"/v1/clients/{d.client_id}/evidence", headers={**api.admin, **PDF})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    text = _pdf_text(response.content)

    # Chinese text, extracted back by a PDF reader.
    for words in ("证据包", "时间线", "竞争的报备", "争议与裁决", "如何验证", "韩**"):
        assert words in text, words
    # Every event's chain hash is printed, as stored.
    stored = stream_links(api.container.store.recorder, uuid.UUID(d.client_id))
    printed = re.findall(r"^hash ([0-9a-f]{64})$", text, flags=re.M)
    assert printed == [r.hash.hex() for r in stored]

    # `yingke verify` recomputes every hash and checkpoint of the log these came from.
    settings = api.container.settings
    env = {
        **os.environ,
        "YINGKE_DATA_DIR": str(settings.data_dir),
        "YINGKE_ADMIN_KEY": ADMIN_KEY,
        "YINGKE_SECRET": "test-secret-0123456789abcdef",
    }
    env.pop("YINGKE_DATABASE_URL", None)
    if settings.database_url is not None:
        env["YINGKE_DATABASE_URL"] = settings.database_url
    verified = subprocess.run(
        [str(Path(sys.executable).parent / "yingke"), "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    head = re.search(r"head (\d+) log hash ([0-9a-f]{64})", verified.stdout)
    assert head, verified.stdout
    position = int(_field(text, "checkpoint_position"))
    log_hash = _field(text, "checkpoint_log_hash")
    # The PDF's checkpoint is one `verify` checked: it is stored, and here the log head.
    assert (position, log_hash) in {
        (cp.position, cp.log_hash.hex()) for cp in checkpoints(api.container.store.recorder)
    }
    assert (position, log_hash) == (int(head.group(1)), head.group(2))
    assert position >= stored[-1].position

    # And anyone verifies its signature offline with the published key.
    keys = api.client.get("/v1/receipts/keys").json()["keys"]
    key_id = _field(text, "key_id")
    (published,) = [k for k in keys if k["key_id"] == key_id]
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(published["public_key"]))
    message = b"yingke-checkpoint-v1" + position.to_bytes(8, "big") + bytes.fromhex(log_hash)
    assert _field(text, "message") == message.hex()
    public.verify(base64.b64decode(_field(text, "signature")), message)


def test_a_party_pdf_hides_the_other_side_too(api: Api) -> None:
    d = disputed_buyer(api)
    response = api.client.get(f"/v1/clients/{d.client_id}/evidence", headers={**d.partner_b, **PDF})
    assert response.status_code == 200
    text = _pdf_text(response.content)
    assert "partner-b" in text
    assert "partner-a" not in text and d.owner_id not in text


def test_decisions_never_show_an_owner_the_buyer_did_not_have(api: Api) -> None:
    """A visit confirms the report and awards the buyer in one command: between those two
    events of one instant nobody owned the buyer, and no decision may say so."""
    d = disputed_buyer(api)
    bundle = _bundle(api, d, api.admin)

    statuses = [(x["type"], x["owner"]["status"]) for x in bundle["decisions"]]
    assert ("ReportConfirmed", "none") not in statuses
    assert all(status != "none" for _, status in statuses), statuses
    awarded = [x for x in bundle["decisions"] if x["type"] == "OwnershipAwarded"]
    assert awarded and awarded[0]["owner_changed"] is True


def test_a_channel_party_sees_its_own_agent_as_its_own(api: Api) -> None:
    d = disputed_buyer(api)
    full = _bundle(api, d, api.admin)
    (own_agent,) = {r["agent_id"] for r in full["reports"] if r["partner_id"] == "partner-a"}

    body = _bundle(api, d, d.partner_a)

    assert body["view"] == "party"
    assert [r["agent_id"] for r in body["reports"]] == [own_agent]
    filed = [
        e
        for e in body["timeline"]
        if e["type"] in ("ReportFiled", "ReportAccepted") and e["data"]["report_id"] == d.report_a
    ]
    assert len(filed) == 2 and all(e["actor"]["id"] == own_agent for e in filed)
    assert filed[0]["data"]["agent_id"] == own_agent
    # Still nothing of the competitor: not its partner, agent or report.
    assert "partner-b" not in str(body) and d.report_b not in str(body)


def test_the_pdf_carries_its_chinese_font(api: Api) -> None:
    """The Chinese glyphs travel inside the PDF (a subset of a Debian TrueType CJK font),
    so a reader without Adobe-GB1 support or CJK fonts of its own still shows them."""
    from api import evidence_pdf

    if evidence_pdf.cjk_font() == evidence_pdf.BUILTIN_CJK:
        message = "no CJK TrueType font: apt-get install fonts-wqy-microhei"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    d = disputed_buyer(api)
    response = api.client.get(f"/v1/clients/{d.client_id}/evidence", headers={**api.admin, **PDF})
    assert response.status_code == 200

    reader = PdfReader(io.BytesIO(response.content))
    resources: Any = reader.pages[0]["/Resources"]
    fonts: list[Any] = [f.get_object() for f in resources["/Font"].values()]
    embedded = [
        f["/BaseFont"]
        for f in fonts
        if "/FontDescriptor" in f and "/FontFile2" in f["/FontDescriptor"]
    ]
    assert embedded and all("WenQuanYi" in str(name) for name in embedded), fonts
    assert not any(str(f["/BaseFont"]) == "/STSong-Light" for f in fonts)
    text = _pdf_text(response.content)
    for words in ("证据包", "时间线", "如何验证", "韩**", d.client_id):
        assert words in text, words


def test_without_a_font_file_the_pdf_falls_back_to_the_builtin_cid_font(tmp_path: Path) -> None:
    from api import evidence_pdf

    not_a_font = tmp_path / "broken.ttf"
    not_a_font.write_bytes(b"not a font")
    assert evidence_pdf.cjk_font(()) == evidence_pdf.BUILTIN_CJK
    assert evidence_pdf.cjk_font([("Missing", str(tmp_path / "none.ttf"))]) == "STSong-Light"
    assert evidence_pdf.cjk_font([("Broken", str(not_a_font))]) == "STSong-Light"


def test_a_party_reads_the_evidence_as_of_before_its_dispute(api: Api) -> None:
    """What a dispute is about happened before it was opened: a party's standing is
    judged on the record now, not at ``at`` (the auditor's page already does so)."""
    d = disputed_buyer(api)
    full = _bundle(api, d, api.admin)
    visited = next(e for e in full["timeline"] if e["type"] == "ClientVisited")["occurred_at"]

    for party in (d.partner_b, d.partner_a, d.owner):
        body = _bundle(api, d, party, at=visited)
        assert body["view"] == "party"
        assert body["disputes"] == []  # none yet at that instant
    claimant = _bundle(api, d, d.partner_b, at=visited)
    assert "partner-a" not in str(claimant) and d.report_a not in str(claimant)
    assert d.owner_id not in str(claimant)
    _, outsider = agent(api, "partner-c")
    response = api.client.get(
        f"/v1/clients/{d.client_id}/evidence", params={"at": visited}, headers=outsider
    )
    assert response.status_code == 404


def test_the_claimant_reads_its_own_claim_in_its_bundle(api: Api) -> None:
    """As `GET /v1/disputes/{id}` shows it: the claimant's own words, not [sealed]."""
    d = disputed_buyer(api)
    own = api.client.get(f"/v1/disputes/{d.dispute_id}", headers=d.partner_b).json()
    assert own["reason"] == "我们更早带看"

    body = _bundle(api, d, d.partner_b)

    assert body["disputes"][0]["reason"] == "我们更早带看"
    opened = next(e for e in body["timeline"] if e["type"] == "DisputeOpened")
    assert opened["data"]["reason"] == "我们更早带看"
    assert "带看记录在先" not in str(body)  # still no ruling's reasoning
    other_side = api.client.get(f"/v1/clients/{d.client_id}/evidence", headers=d.partner_a)
    assert "我们更早带看" not in other_side.text
