"""`yingke verify --bundle FILE`: the hashes an evidence bundle prints (its PDF, or its
JSON) are checked against the store's verified chain, and its checkpoint signature
against the key directory, so an auditor confirms the very document they were handed.
A bundle with one hash changed, one event left out or a forged signature is refused."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from api import evidence_pdf
from tests.http.conftest import ADMIN_KEY, Api
from tests.http.evidence_scenario import disputed_buyer

PDF = {"Accept": "application/pdf"}


def _verify(api: Api, bundle: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "YINGKE_DATA_DIR": str(api.container.settings.data_dir),
        "YINGKE_ADMIN_KEY": ADMIN_KEY,
        "YINGKE_SECRET": "test-secret-0123456789abcdef",
    }
    env.pop("YINGKE_DATABASE_URL", None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "yingke"), "verify", "--bundle", str(bundle)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _fetch(api: Api, client_id: str, pdf: bool = False) -> Any:
    response = api.client.get(
        f"/v1/clients/{client_id}/evidence", headers={**api.admin, **(PDF if pdf else {})}
    )
    assert response.status_code == 200, response.text
    return response.content if pdf else response.json()


def test_verify_confirms_the_hashes_a_downloaded_pdf_prints(api: Api, tmp_path: Path) -> None:
    d = disputed_buyer(api)
    pdf = tmp_path / "evidence.pdf"
    pdf.write_bytes(_fetch(api, d.client_id, pdf=True))
    events = len(_fetch(api, d.client_id)["timeline"])

    done = _verify(api, pdf)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{events} events of stream {d.client_id}" in done.stdout
    assert "signature verified" in done.stdout


def test_verify_confirms_a_json_bundle_as_of_an_earlier_instant(api: Api, tmp_path: Path) -> None:
    d = disputed_buyer(api)
    response = api.client.get(
        f"/v1/clients/{d.client_id}/evidence",
        params={"at": d.before_ruling.isoformat()},
        headers=api.admin,
    )
    bundle = tmp_path / "evidence.json"
    bundle.write_text(response.text)

    done = _verify(api, bundle)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(response.json()['timeline'])} events" in done.stdout


def test_a_pdf_with_one_hash_changed_is_refused(api: Api, tmp_path: Path) -> None:
    d = disputed_buyer(api)
    bundle = _fetch(api, d.client_id)
    forged = bundle["timeline"][3]["chain"]
    forged["hash"] = ("0" if forged["hash"][0] != "0" else "1") + forged["hash"][1:]
    pdf = tmp_path / "forged.pdf"
    pdf.write_bytes(evidence_pdf.render(bundle))

    done = _verify(api, pdf)

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"BUNDLE: version 4 position {forged['position']}" in done.stdout


def test_a_bundle_leaving_an_event_out_is_refused(api: Api, tmp_path: Path) -> None:
    d = disputed_buyer(api)
    bundle = _fetch(api, d.client_id)
    del bundle["timeline"][2]  # e.g. the report that lost, quietly dropped
    path = tmp_path / "short.json"
    path.write_text(json.dumps(bundle))

    done = _verify(api, path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "BUNDLE:" in done.stdout and "version 3" in done.stdout


def test_a_forged_checkpoint_signature_is_refused(api: Api, tmp_path: Path) -> None:
    d = disputed_buyer(api)
    bundle = _fetch(api, d.client_id)
    signature = bytearray(base64.b64decode(bundle["checkpoint"]["signature"]))
    signature[0] ^= 1
    bundle["checkpoint"]["signature"] = base64.b64encode(bytes(signature)).decode()
    pdf = tmp_path / "forged.pdf"
    pdf.write_bytes(evidence_pdf.render(bundle))

    done = _verify(api, pdf)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "BUNDLE: the checkpoint signature does not verify" in done.stdout


def test_a_file_that_is_no_bundle_is_refused(api: Api, tmp_path: Path) -> None:
    disputed_buyer(api)
    path = tmp_path / "notes.txt"
    path.write_text("not a bundle")

    done = _verify(api, path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "BUNDLE: not an evidence bundle" in done.stdout


def test_a_party_bundle_without_the_contact_disclosures_still_verifies(
    api: Api, tmp_path: Path
) -> None:
    """A party's view leaves out ContactDisclosed events (managers' and auditors' only):
    it says which versions it withholds, and verify accepts exactly those gaps."""
    d = disputed_buyer(api)
    disclosed = api.client.get(f"/v1/clients/{d.client_id}/contact", headers=d.owner)
    assert disclosed.status_code == 200, disclosed.text
    followed = api.client.post(
        f"/v1/clients/{d.client_id}/follow-ups",
        json={"method": "call", "summary": "约了复访", "effective": True},
        headers=d.owner,
    )
    assert followed.status_code == 201, followed.text  # the disclosure is no longer last
    response = api.client.get(f"/v1/clients/{d.client_id}/evidence", headers=d.partner_b)
    body = response.json()
    assert body["view"] == "party"
    assert "ContactDisclosed" not in [e["type"] for e in body["timeline"]]
    (withheld,) = body["withheld_versions"]

    as_json = tmp_path / "party.json"
    as_json.write_text(response.text)
    as_pdf = tmp_path / "party.pdf"
    pdf = api.client.get(
        f"/v1/clients/{d.client_id}/evidence", headers={**d.partner_b, **PDF}
    ).content
    as_pdf.write_bytes(pdf)
    for path in (as_json, as_pdf):
        done = _verify(api, path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"v{withheld} withheld from this view" in done.stdout

    # Withholding is declared, not assumed: a gap the bundle does not declare is refused.
    body["withheld_versions"] = []
    as_json.write_text(json.dumps(body))
    refused = _verify(api, as_json)
    assert refused.returncode == 1 and f"version {withheld}" in refused.stdout


def test_a_bundle_with_an_event_retyped_or_retimed_is_refused(api: Api, tmp_path: Path) -> None:
    """The hashes are not all it checks: each printed event's type, version and time are
    those of the stored event at its position, in the JSON and on the PDF alike."""
    d = disputed_buyer(api)
    bundle = _fetch(api, d.client_id)
    entry = bundle["timeline"][2]
    position = entry["chain"]["position"]

    retyped = json.loads(json.dumps(bundle))
    retyped["timeline"][2]["type"] = (
        "ReportRejected" if entry["type"] != "ReportRejected" else ("ReportFiled")
    )
    as_json = tmp_path / "retyped.json"
    as_json.write_text(json.dumps(retyped))
    done = _verify(api, as_json)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"BUNDLE: version 3 position {position}: the bundle prints type" in done.stdout

    retimed = json.loads(json.dumps(bundle))
    retimed["timeline"][2]["occurred_at"] = "2020-01-01T00:00:00+00:00"
    as_pdf = tmp_path / "retimed.pdf"
    as_pdf.write_bytes(evidence_pdf.render(retimed))
    done = _verify(api, as_pdf)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"BUNDLE: version 3 position {position}: the bundle prints time" in done.stdout


def test_an_unfavourable_event_declared_withheld_is_refused(api: Api, tmp_path: Path) -> None:
    """Only a kind a party's view may leave out (ContactDisclosed) passes as withheld: a
    party deleting an event it dislikes and listing its version as withheld is caught."""
    d = disputed_buyer(api)
    response = api.client.get(f"/v1/clients/{d.client_id}/evidence", headers=d.partner_b)
    assert response.status_code == 200, response.text
    body = response.json()
    dropped = body["timeline"][2]
    assert dropped["type"] != "ContactDisclosed"
    del body["timeline"][2]
    body["withheld_versions"] = sorted([*body["withheld_versions"], dropped["version"]])

    as_json = tmp_path / "party.json"
    as_json.write_text(json.dumps(body))
    as_pdf = tmp_path / "party.pdf"
    as_pdf.write_bytes(evidence_pdf.render(body))
    for path in (as_json, as_pdf):
        done = _verify(api, path)
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            f"BUNDLE: version {dropped['version']} is declared withheld but is a "
            f"{dropped['type']}" in done.stdout
        )
