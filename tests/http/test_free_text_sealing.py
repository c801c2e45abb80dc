"""The attack on free text: a name and a phone number typed into every reason, comment and
profile note a buyer's life can hold. Nothing of it is stored in clear; history shows it
to those who may read the buyer's notes and ``[sealed]`` to everyone else; and after the
buyer is erased, no GET endpoint (as any role) and no BI view table shows it, the buyer's
name or number, or even the buyer's masked number (ADR 0045)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx

from domain.sealing import SEALED
from tests.http.conftest import Api

Headers = dict[str, str]
PHONE, MASK, NAME, RENAMED = "13812345678", "138****5678", "王小明", "李四光"
# What people type into reasons: someone's name and number.
TYPED_NAME, TYPED_PHONE = "欧阳娜娜", "18611112222"
TEXT = f"{TYPED_NAME} 电话 {TYPED_PHONE}"
UNITS_CSV = (
    "building,number,rooms,area,floor,orientation,list_price\n"
    "3栋,1201,3,89.50,12,south,2100000\n"
    "5栋,0801,4,120,8,southeast,2600000\n"
)


def forms(text: str) -> list[str]:
    """A string as it may appear: as is, and JSON-escaped (stored state, bodies)."""
    return [text, json.dumps(text)[1:-1]]


SECRETS = [f for s in (TYPED_NAME, TYPED_PHONE, NAME, RENAMED, PHONE, MASK) for f in forms(s)]


class Office:
    def __init__(self, api: Api) -> None:
        self.api = api
        p = api.project
        self.owner_id, self.owner = api.principal("consultant", project_ids=[p])
        self.other_id, self.other = api.principal("consultant", project_ids=[p])
        self.supervisor_id, self.supervisor = api.principal("supervisor", project_ids=[p])
        self.manager_id, self.manager = api.principal("manager", project_ids=[p])
        self.finance_id, self.finance = api.principal("finance", project_ids=[p])
        self.auditor_id, self.auditor = api.principal("auditor")
        self.agent_id, self.agent = api.principal("channel_agent", partner_id="partner-a")
        self.service_id, self.service = api.principal("service", project_ids=[p])
        self.ids: dict[str, str] = {}

    def call(
        self, method: str, url: str, headers: Headers, status: int = 200, **kw: Any
    ) -> httpx.Response:
        response: httpx.Response = self.api.client.request(method, url, headers=headers, **kw)
        assert response.status_code == status, (url, response.text)
        return response

    def post(self, url: str, headers: Headers, body: Any = None, status: int = 200) -> Any:
        return self.call("POST", url, headers, status, json=body).json()

    @property
    def readers(self) -> dict[str, Headers]:
        return {
            "owner": self.owner,
            "other consultant": self.other,
            "supervisor": self.supervisor,
            "manager": self.manager,
            "finance": self.finance,
            "auditor": self.auditor,
            "channel agent": self.agent,
            "service": self.service,
            "admin": self.api.admin,
        }


def live_a_buyer_s_life(o: Office) -> None:
    """Every command that takes free text about the buyer, each given TEXT."""
    api, p = o.api, o.api.project
    report = {"project_id": p, "partner_id": "partner-a", "agent_id": o.agent_id}
    filed = o.post("/v1/reports", o.agent, {**report, "client_name": NAME, "phone": PHONE}, 201)
    visit = {
        "project_id": p,
        "phone": PHONE,
        "client_name": NAME,
        "consultant_id": o.owner_id,
        "partner_id": "partner-a",
    }
    client_id = o.post("/v1/visits", o.owner, visit, 201)["client_id"]
    o.ids.update(client_id=client_id, report_id=filed["report_id"])
    c = f"/v1/clients/{client_id}"

    o.post(f"{c}/grade", o.owner, {"grade": "A", "reason": TEXT})
    o.call("PUT", f"{c}/profile", o.owner, json={"source_detail": TEXT, "purpose": "self_use"})
    o.post(f"{c}/follow-ups", o.owner, {"method": "call", "summary": TEXT, "effective": True}, 201)
    o.post(f"{c}/transfers", o.manager, {"to_consultant_id": o.other_id, "reason": TEXT})
    o.post(f"{c}/transfers", o.manager, {"to_consultant_id": o.owner_id, "reason": TEXT})

    # A deal: swapped, renamed, its loan refused, cancelled. Idempotency-Keys make the
    # answers stored records too: those must hold no clear text either.
    csv = {**o.manager, "Content-Type": "text/csv"}
    units = o.call("POST", f"/v1/projects/{p}/units:import", csv, content=UNITS_CSV.encode())
    unit_ids = {u["number"]: u["unit_id"] for u in units.json()["units"]}
    opened = o.post(
        "/v1/deals", o.owner, {"client_id": client_id, "unit_id": unit_ids["1201"]}, 201
    )
    deal_id = opened["deal_id"]
    o.ids["deal_id"], o.ids["unit_id"] = deal_id, unit_ids["1201"]
    d = f"/v1/deals/{deal_id}"
    deadline = (api.clock.now + timedelta(days=7)).isoformat()
    deposit = {"amount_fen": 5_000_000, "method": "cash", "signing_deadline": deadline}
    o.post(f"{d}/deposit", o.owner, deposit)
    keyed = {**o.manager, "Idempotency-Key": "swap-1"}
    o.post(f"{d}/swap", keyed, {"unit_id": unit_ids["0801"], "reason": TEXT})
    o.post(f"{d}/rename", o.manager, {"buyer_name": RENAMED, "reason": TEXT})
    o.post(f"{d}/subscription", o.owner, {"price_fen": 250_000_000, "payment_plan": "mortgage"})
    o.post(f"{d}/loan", o.owner, {"bank": TEXT, "amount_fen": 150_000_000})
    o.post(f"{d}/loan/refuse", o.owner, {"reason": TEXT})
    keyed = {**o.finance, "Idempotency-Key": "cancel-1"}
    cancelled = o.post(f"{d}/cancel", keyed, {"reason": TEXT, "fault": "no_fault"})
    assert cancelled["cancellation"]["reason"] == SEALED  # an answer is never opened

    # A dispute, upheld (ownership moves with the claim's reason), appealed, reversed.
    claim = {"claimant_id": o.other_id, "reason": TEXT, "evidence_versions": [1]}
    keyed = {**o.other, "Idempotency-Key": "dispute-1"}
    dispute_id = o.post(f"{c}/disputes", keyed, claim, 201)["dispute_id"]
    o.ids["dispute_id"] = dispute_id
    ruling = {"outcome": "upheld", "reason": TEXT, "evidence_versions": [1]}
    o.post(f"/v1/disputes/{dispute_id}/ruling", o.manager, ruling)
    o.post(f"/v1/disputes/{dispute_id}/appeal", o.owner, {"reason": TEXT})
    final = {"outcome": "dismissed", "reason": TEXT, "evidence_versions": [1]}
    o.post(f"/v1/disputes/{dispute_id}/ruling", o.manager, final)


def lose_and_claim(o: Office) -> None:
    c = f"/v1/clients/{o.ids['client_id']}"
    asked = o.post(f"{c}/loss-requests", o.owner, {"reason": "price", "note": TEXT}, 201)
    o.post(f"{c}/loss-requests/{asked['request_id']}/reject", o.manager, {"comment": TEXT})
    asked = o.post(f"{c}/loss-requests", o.owner, {"reason": "price", "note": TEXT}, 201)
    o.post(f"{c}/loss-requests/{asked['request_id']}/approve", o.manager, {"comment": TEXT})
    policy = f"/v1/projects/{o.api.project}/policy"
    o.call("PUT", policy, o.api.admin, json={"pool_claim_approval": True})
    claim = o.post(f"{c}/claims", o.other, {}, 201)
    o.post(f"{c}/claims/{claim['claim_id']}/reject", o.manager, {"comment": TEXT})


def stored_text(api: Api) -> str:
    recorder = api.container.store.recorder
    rows = recorder.select_notifications(start=1, limit=1_000_000)
    return "\n".join(r.state.decode("utf-8") for r in rows)


def view_tables(api: Api) -> dict[str, str]:
    api.container.follower.catch_up()
    db = api.container.views
    names = [r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {name: repr(db.query(f'SELECT * FROM "{name}"')) for name in names}


def every_get(o: Office) -> dict[str, str]:
    """Every GET operation of the API, its ids filled in, as every role: the bodies."""
    paths = o.api.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    # A what-if replay of the project over the buyer's life: its result is read too.
    now = o.api.clock()
    window = {"from": (now - timedelta(days=400)).isoformat(), "to": now.isoformat()}
    replay = o.call(
        "POST",
        f"/v1/projects/{o.api.project}/what-if",
        o.manager,
        202,
        json={**window, "policy": {"overrides": {"protection": "P15D"}}},
    )
    o.api.container.job_runner.wait()
    fill = {
        **o.ids,
        "project_id": o.api.project,
        "principal_id": o.owner_id,
        "consultant_id": o.owner_id,
        "job_id": replay.json()["job_id"],
    }
    seen: dict[str, str] = {}
    for path, operations in paths.items():
        if "get" not in operations:
            continue
        names = [p["name"] for p in operations["get"].get("parameters", []) if p["in"] == "path"]
        missing = [n for n in names if n not in fill]
        assert not missing, f"the scan does not know how to fill {missing} in {path}"
        url = path.format(**{n: fill[n] for n in names})
        for role, headers in o.readers.items():
            response = o.api.client.get(url, headers=headers)
            assert response.status_code < 500, (url, role, response.text)
            seen[f"GET {url} as {role}"] = response.text
    return seen


def leaks(texts: dict[str, str], secrets: list[str]) -> list[str]:
    return [f"{where}: {s}" for where, text in texts.items() for s in secrets if s in text]


def test_free_text_is_sealed_shown_to_readers_and_gone_after_erasure(api: Api) -> None:
    o = Office(api)
    live_a_buyer_s_life(o)
    client_id, deal_id = o.ids["client_id"], o.ids["deal_id"]

    # Sealed at rest: not one stored event (idempotency records included) holds the text.
    assert not leaks({"event store": stored_text(api)}, forms(TYPED_NAME) + forms(TYPED_PHONE))

    # Those who serve the buyer, and auditors, read it; everyone else sees [sealed].
    history = f"/v1/clients/{client_id}/history"
    for reader in (o.owner, o.supervisor, o.manager, o.auditor):
        shown = o.call("GET", history, reader).json()["events"]
        reasons = [e["data"].get("reason") for e in shown if e["type"] == "GradeChanged"]
        assert reasons == [TEXT]
        profiles = [e["data"]["profile"] for e in shown if e["type"] == "ProfileUpdated"]
        assert [(p["purpose"], p["source_detail"]) for p in profiles] == [("self_use", TEXT)]
        texts = [e["data"].get("reason") for e in shown if e["type"].startswith("Dispute")]
        assert texts == [TEXT] * 4
    for outsider in (o.other, o.finance, o.service, o.api.admin):
        # Whoever may read the history at all but not the notes sees [sealed].
        response = api.client.get(history, headers=outsider)
        assert TYPED_NAME not in response.text and TYPED_PHONE not in response.text
        assert response.status_code in (200, 403, 404)
        assert response.status_code != 200 or SEALED in response.text
    profile = o.call("GET", f"/v1/clients/{client_id}", o.owner).json()["profile"]
    assert profile["source_detail"] == TEXT
    deal = o.call("GET", f"/v1/deals/{deal_id}", o.manager).json()
    assert deal["cancellation"]["reason"] == TEXT
    assert [s["reason"] for s in deal["swaps"]] == [TEXT]
    deal = o.call("GET", f"/v1/deals/{deal_id}", o.finance).json()
    assert deal["cancellation"]["reason"] == SEALED
    assert deal["loan"]["bank"] == TEXT  # a deal's documents: for every reader of the deal
    dispute = o.call("GET", f"/v1/disputes/{o.ids['dispute_id']}", o.manager).json()
    assert [dispute["reason"], dispute["appeal"]["reason"]] == [TEXT, TEXT]
    assert [r["reason"] for r in dispute["rulings"]] == [TEXT, TEXT]
    mine = o.call("GET", f"/v1/disputes/{o.ids['dispute_id']}", o.other).json()
    assert mine["reason"] == TEXT  # the claimant reads its own claim

    lose_and_claim(o)
    shown = o.call("GET", history, o.manager).json()["events"]
    comments = [
        e["data"]["comment"]
        for e in shown
        if e["type"].startswith("Loss") and "comment" in e["data"]
    ]
    assert comments == [TEXT, TEXT]
    assert [e["data"]["reason"] for e in shown if e["type"] == "ClaimRejected"] == [TEXT]

    o.call("POST", f"/v1/clients/{client_id}/erasure", o.api.admin)

    found = leaks(every_get(o), SECRETS) + leaks(view_tables(api), SECRETS)
    assert not found, "\n".join(found)
    assert not leaks({"event store": stored_text(api)}, forms(TYPED_NAME) + forms(TYPED_PHONE))


def test_the_author_of_a_reason_reads_it_and_answers_store_it_sealed(api: Api) -> None:
    """The attack: a manager rules and the answer shows the ruling's own reason as
    ``[sealed]``; an admin who rules (or files a claim for a consultant) never reads their
    words again, even on GET. Whoever wrote a reason reads it, the people serving the
    buyer read every reason, everyone else still sees ``[sealed]`` — and the answers kept
    as idempotency records still hold no clear text (they are opened as they are sent)."""
    o = Office(api)
    p = api.project
    visit = {"project_id": p, "phone": PHONE, "client_name": NAME, "consultant_id": o.owner_id}
    client_id = o.post("/v1/visits", o.owner, visit, 201)["client_id"]
    claim = {"claimant_id": o.other_id, "reason": "CLAIM " + TEXT, "evidence_versions": [1]}
    keyed = {**o.other, "Idempotency-Key": "author-claim"}
    opened = o.post(f"/v1/clients/{client_id}/disputes", keyed, claim, 201)
    assert opened["reason"] == "CLAIM " + TEXT  # the claimant wrote it
    again = o.call("POST", f"/v1/clients/{client_id}/disputes", keyed, 201, json=claim)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["reason"] == "CLAIM " + TEXT
    dispute = f"/v1/disputes/{opened['dispute_id']}"

    ruling = {"outcome": "upheld", "reason": "RULING " + TEXT, "evidence_versions": [1]}
    ruled = o.post(f"{dispute}/ruling", {**o.manager, "Idempotency-Key": "author-rule"}, ruling)
    assert ruled["rulings"][0]["reason"] == "RULING " + TEXT  # the manager's own words
    assert ruled["reason"] == "CLAIM " + TEXT  # and a manager serves the buyer
    appealed = o.post(f"{dispute}/appeal", o.owner, {"reason": "APPEAL " + TEXT})
    assert appealed["appealed"] is True
    final = {"outcome": "dismissed", "reason": "FINAL " + TEXT, "evidence_versions": [1]}
    by_admin = o.post(f"{dispute}/ruling", api.admin, final)
    assert by_admin["rulings"][1]["reason"] == "FINAL " + TEXT
    assert by_admin["reason"] == SEALED and by_admin["rulings"][0]["reason"] == SEALED

    read = o.call("GET", dispute, api.admin).json()
    assert [r["reason"] for r in read["rulings"]] == [SEALED, "FINAL " + TEXT]
    assert read["reason"] == SEALED and read["appeal"]["reason"] == SEALED
    bundle = o.call("GET", f"/v1/clients/{client_id}/evidence", api.admin).json()
    (shown,) = bundle["disputes"]
    assert [r["reason"] for r in shown["rulings"]] == [SEALED, "FINAL " + TEXT]
    timeline = [e["data"]["reason"] for e in bundle["timeline"] if e["type"] == "DisputeRuled"]
    assert timeline == [SEALED, "FINAL " + TEXT]
    # The owner appealed: a party to the dispute, it reads its appeal and nothing else.
    party = o.call("GET", dispute, o.owner).json()
    assert party["appeal"]["reason"] == "APPEAL " + TEXT and party["reason"] is None
    assert TYPED_NAME not in json.dumps([party["rulings"], party["claimant_id"]])
    bundle = o.call("GET", f"/v1/clients/{client_id}/evidence", o.owner).json()
    assert bundle["view"] == "party"
    words = {e["type"]: e["data"]["reason"] for e in bundle["timeline"] if "Dispute" in e["type"]}
    assert words == {
        "DisputeOpened": None,
        "DisputeRuled": None,
        "DisputeAppealed": "APPEAL " + TEXT,
    }
    for outsider in (o.finance, o.service, o.agent):
        response = api.client.get(dispute, headers=outsider)
        assert TYPED_NAME not in response.text, response.text
    assert not leaks({"event store": stored_text(api)}, forms(TYPED_NAME) + forms(TYPED_PHONE))
