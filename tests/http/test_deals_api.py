"""Deals, units and the commission ledger over HTTP, on the embedded SQLite store."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from projections import queries
from projections.queries import Scope
from tests.http.conftest import Api
from tests.support import ctx

PHONE = "13812345678"
PRICE = 200_000_000  # fen: 2,000,000 yuan
DEPOSIT = 5_000_000
UNITS_CSV = (
    "building,number,rooms,area,floor,orientation,list_price\n"
    "3栋,1201,3,89.50,12,south,2100000\n"
    "3栋,1202,2,76.00,12,north_south,1850000.50\n"
    "5栋,0801,4,120,8,southeast,2600000\n"
)


@dataclass
class Office:
    """A sales office: its staff, a channel, a buyer owned after an accompanied visit."""

    api: Api
    consultant_id: str = ""
    consultant: dict[str, str] = field(default_factory=dict)
    finance: dict[str, str] = field(default_factory=dict)
    manager: dict[str, str] = field(default_factory=dict)
    auditor: dict[str, str] = field(default_factory=dict)
    agent: dict[str, str] = field(default_factory=dict)
    client_id: str = ""
    units: dict[str, str] = field(default_factory=dict)
    position: int = 0

    @property
    def path(self) -> str:
        return f"/v1/projects/{self.api.project}"

    def call(
        self, method: str, url: str, headers: dict[str, str], status: int = 200, **kw: Any
    ) -> httpx.Response:
        response: httpx.Response = self.api.client.request(method, url, headers=headers, **kw)
        assert response.status_code == status, response.text
        if "Yingke-Position" in response.headers:
            self.position = int(response.headers["Yingke-Position"])
        return response

    def view(self, url: str, headers: dict[str, str], **params: Any) -> Any:
        """Read a view once it includes our last write."""
        return self.call("GET", url, headers, params={"after": self.position, **params}).json()

    def step(
        self, deal_id: str, name: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        url = f"/v1/deals/{deal_id}/{name}"
        result: dict[str, Any] = self.call(
            "POST", url, headers or self.consultant, json=body
        ).json()
        return result

    def open_deal(self, number: str = "1201") -> str:
        body = {"client_id": self.client_id, "unit_id": self.units[number]}
        deal_id: str = self.call("POST", "/v1/deals", self.consultant, 201, json=body).json()[
            "deal_id"
        ]
        return deal_id


@pytest.fixture
def office(api: Api) -> Office:
    o = Office(api)
    p = api.project
    o.consultant_id, o.consultant = api.principal("consultant", project_ids=[p])
    _, o.finance = api.principal("finance", project_ids=[p])
    _, o.manager = api.principal("manager", project_ids=[p])
    _, o.auditor = api.principal("auditor")
    agent_id, o.agent = api.principal("channel_agent", partner_id="partner-a")
    report = {
        "project_id": p,
        "partner_id": "partner-a",
        "agent_id": agent_id,
        "client_name": "王小明",
        "phone": PHONE,
    }
    o.call("POST", "/v1/reports", o.agent, 201, json=report)
    visit = {
        "project_id": p,
        "phone": PHONE,
        "client_name": "王小明",
        "consultant_id": o.consultant_id,
        "partner_id": "partner-a",
    }
    o.client_id = o.call("POST", "/v1/visits", o.consultant, 201, json=visit).json()["client_id"]
    headers = {**o.manager, "Content-Type": "text/csv"}
    imported = o.call("POST", f"{o.path}/units:import", headers, content=UNITS_CSV.encode())
    o.units = {u["number"]: u["unit_id"] for u in imported.json()["units"]}
    return o


def deadline(api: Api, days: int = 7) -> str:
    return (api.clock.now + timedelta(days=days)).isoformat()


# ----------------------------------------------------------------------- units


def test_imported_units_are_listed_with_their_ids_and_filters(office: Office) -> None:
    listed = office.view(f"{office.path}/units", office.consultant)["items"]
    assert [(u["building"], u["number"], u["status"]) for u in listed] == [
        ("3栋", "1201", "available"),
        ("3栋", "1202", "available"),
        ("5栋", "0801", "available"),
    ]
    assert {u["unit_id"] for u in listed} == set(office.units.values())
    assert listed[1]["list_price_fen"] == 185_000_050 and listed[1]["area"] == 76.0
    three_rooms = office.view(f"{office.path}/units", office.consultant, rooms=3, area_to=100)
    assert [u["number"] for u in three_rooms["items"]] == ["1201"]


def test_an_import_with_bad_rows_names_each_line_and_imports_nothing(office: Office) -> None:
    bad = (
        "building,number,rooms,area,floor,orientation,list_price\n"
        "7栋,0101,3,89.50,1,south,2100000\n"
        "7栋,0102,3,eighty,1,south,2100000\n"
        "7栋,0103,3,80,1,upwards,2100000\n"
        "7栋,0101,3,80,1,south,2100000\n"
    )
    headers = {**office.manager, "Content-Type": "text/csv"}
    response = office.call(
        "POST", f"{office.path}/units:import", headers, 422, content=bad.encode()
    )
    assert [e["field"] for e in response.json()["errors"]] == [
        "line 3: area",
        "line 4: orientation",
        "line 5: number",
    ]
    listed = office.view(f"{office.path}/units", office.consultant, building="7栋")
    assert listed["items"] == []


def test_a_json_import_reports_bad_items_and_accepts_good_ones(office: Office) -> None:
    url = f"{office.path}/units:import"
    unit = {
        "building": "9栋",
        "number": "0301",
        "rooms": 2,
        "area": "66.6",
        "floor": 3,
        "orientation": "east",
        "list_price_fen": 99_000_000,
    }
    bad = office.call(
        "POST", url, office.manager, 422, json={"units": [unit, {**unit, "rooms": 99}]}
    )
    assert [e["field"] for e in bad.json()["errors"]] == ["item 2: rooms"]
    good = office.call("POST", url, office.manager, json={"units": [unit]}).json()
    assert (good["listed"], good["units"][0]["outcome"]) == (1, "listed")
    again = office.call("POST", url, office.manager, json=[unit]).json()
    assert (again["listed"], again["unchanged"]) == (0, 1)


def test_only_managers_import_units(office: Office) -> None:
    headers = {**office.consultant, "Content-Type": "text/csv"}
    office.call("POST", f"{office.path}/units:import", headers, 403, content=UNITS_CSV.encode())


# ------------------------------------------------------------------ the walk


def test_a_deal_walks_from_deposit_to_certificate(office: Office) -> None:
    api = office.api
    deal_id = office.open_deal()
    office.step(
        deal_id,
        "deposit",
        {"amount_fen": DEPOSIT, "method": "wechat_pay", "signing_deadline": deadline(api)},
    )
    office.step(deal_id, "subscription", {"price_fen": PRICE, "payment_plan": "mortgage"})
    office.step(
        deal_id,
        "payments",
        {"amount_fen": 55_000_000, "kind": "down_payment"},
        office.finance,
    )
    office.step(deal_id, "loan", {"bank": "ICBC", "amount_fen": 140_000_000})
    office.step(deal_id, "loan/approve", None)
    office.step(deal_id, "contract", {"contract_no": "HT-2026-0001", "price_fen": PRICE})
    office.step(deal_id, "filing", {"filing_no": "BA-0001"})
    office.step(
        deal_id,
        "payments",
        {"amount_fen": 140_000_000, "kind": "loan_disbursement"},
        office.finance,
    )
    office.step(deal_id, "delivery")
    done = office.step(deal_id, "certificate", {"certificate_no": "CZ-0001"})

    assert (done["stage"], done["status"], done["received_fen"]) == (
        "certified",
        "completed",
        PRICE,
    )
    assert done["attribution"]["partner_id"] == "partner-a"
    assert done["commission"]["net_fen"] == PRICE * 100 // 10_000 + PRICE * 40 // 10_000
    read = office.call("GET", f"/v1/deals/{deal_id}", office.auditor).json()
    assert [m["stage"] for m in read["milestones"]][-1] == "certified"

    # The buyer's history shows every milestone
    history = office.call("GET", f"/v1/clients/{office.client_id}/history", office.auditor)
    milestones = [
        e["data"]["milestone"]
        for e in history.json()["events"]
        if e["type"] == "DealMilestoneRecorded"
    ]
    assert milestones == [
        "opened",
        "deposit_paid",
        "subscription_signed",
        "payment_received",
        "loan_applied",
        "loan_approved",
        "contract_signed",
        "contract_filed",
        "payment_received",
        "unit_delivered",
        "certificate_issued",
    ]

    # And the tables show it: the unit sold, the pipeline, the money and the ledger
    units = office.view(f"{office.path}/units", office.manager, status="sold")["items"]
    assert [u["number"] for u in units] == ["1201"]
    stages = office.view("/v1/views/deal-pipeline", office.manager)["items"]
    assert [(s["stage"], s["deals"], s["received_fen"]) for s in stages] == [
        ("certified", 1, PRICE)
    ]
    [month] = office.view("/v1/views/payments", office.finance)["items"]
    assert (month["expected_fen"], month["received_fen"], month["deposits_fen"]) == (
        PRICE,
        PRICE,
        DEPOSIT,
    )
    ledger = office.view("/v1/views/commissions", office.finance)["items"]
    assert {(r["payee_kind"], r["payee_id"]): r["payable_fen"] for r in ledger} == {
        ("channel", "partner-a"): PRICE * 100 // 10_000,
        ("consultant", office.consultant_id): PRICE * 40 // 10_000,
    }
    # The funnel and channel tables, read directly once the views caught up
    assert api.container.follower.wait_for(office.position, 5)
    views, mine = api.container.views, Scope(project_ids=(api.project,))
    [funnel] = [r for r in queries.funnel(views, mine) if r["partner_id"] == "partner-a"]
    assert (funnel["reported"], funnel["visited"]) == (1, 1)
    assert (funnel["subscribed"], funnel["signed"]) == (1, 1)
    [channel] = queries.channels(views, mine)
    assert (channel["deals"], channel["commission_accrued_fen"]) == (1, PRICE * 100 // 10_000)


def test_a_step_out_of_order_is_a_conflict_with_a_code(office: Office) -> None:
    deal_id = office.open_deal()
    url = f"/v1/deals/{deal_id}/contract"
    body = {"contract_no": "HT-1", "price_fen": PRICE}
    response = office.call("POST", url, office.consultant, 409, json=body)
    assert response.json()["code"] == "out_of_order"


def test_a_held_unit_cannot_be_opened_again(office: Office) -> None:
    office.open_deal()
    body = {"client_id": office.client_id, "unit_id": office.units["1201"]}
    response = office.call("POST", "/v1/deals", office.consultant, 409, json=body)
    assert response.json()["code"] == "unit_unavailable"


# --------------------------------------------------------- cancel and swap


def test_a_missed_deadline_cancellation_forfeits_the_deposit_and_reverses_commission(
    office: Office,
) -> None:
    api = office.api
    deal_id = office.open_deal()
    office.step(
        deal_id,
        "deposit",
        {"amount_fen": DEPOSIT, "method": "cash", "signing_deadline": deadline(api, 3)},
    )
    office.step(deal_id, "subscription", {"price_fen": PRICE, "payment_plan": "full"})
    office.step(
        deal_id, "payments", {"amount_fen": 60_000_000, "kind": "down_payment"}, office.finance
    )
    cancel = {"reason": "buyer vanished", "fault": "buyer_missed_deadline"}
    early = office.call("POST", f"/v1/deals/{deal_id}/cancel", office.finance, 409, json=cancel)
    assert early.json()["code"] == "deadline_not_passed"
    api.clock.advance(days=4)

    cancelled = office.step(deal_id, "cancel", cancel, office.finance)

    assert cancelled["cancellation"]["forfeited_fen"] == DEPOSIT
    assert cancelled["cancellation"]["refund_fen"] == 60_000_000
    assert cancelled["commission"]["net_fen"] == 0
    assert cancelled["commission"]["reversed_fen"] == cancelled["commission"]["accrued_fen"] > 0
    unit = office.view(f"{office.path}/units", office.manager, building="3栋")["items"][0]
    assert (unit["number"], unit["status"], unit["deal_id"]) == ("1201", "available", None)
    ledger = office.view("/v1/views/commissions", office.finance)["items"]
    assert len(ledger) == 2
    assert all(r["payable_fen"] == 0 and r["accrued_fen"] > 0 for r in ledger)
    [month] = office.view("/v1/views/payments", office.finance)["items"]
    assert (month["forfeited_fen"], month["refunds_due_fen"]) == (DEPOSIT, 60_000_000)
    # The buyer may deal again once the deal is cancelled
    office.open_deal("1202")


def test_a_swap_releases_the_old_unit_and_holds_the_new_one(office: Office) -> None:
    deal_id = office.open_deal()
    office.step(
        deal_id,
        "deposit",
        {"amount_fen": DEPOSIT, "method": "cash", "signing_deadline": deadline(office.api)},
    )
    body = {"unit_id": office.units["0801"], "reason": "wants four rooms"}
    office.call("POST", f"/v1/deals/{deal_id}/swap", office.consultant, 403, json=body)

    swapped = office.step(deal_id, "swap", body, office.manager)

    assert (swapped["unit"]["number"], swapped["stage"], swapped["deposit_fen"]) == (
        "0801",
        "deposit_paid",
        DEPOSIT,
    )
    units = office.view(f"{office.path}/units", office.manager)["items"]
    assert {u["number"]: u["status"] for u in units} == {
        "1201": "available",
        "1202": "available",
        "0801": "held",
    }
    office.step(deal_id, "subscription", {"price_fen": 250_000_000, "payment_plan": "full"})


def test_a_rename_is_sealed_and_shown_masked(office: Office) -> None:
    deal_id = office.open_deal()
    renamed = office.step(
        deal_id, "rename", {"buyer_name": "李四光", "reason": "spouse"}, office.manager
    )
    assert renamed["buyer_name_masked"] == "李**"
    assert "李四光" not in str(office.call("GET", f"/v1/deals/{deal_id}", office.auditor).json())


# ------------------------------------------------------------------- roles


def test_roles_are_checked_on_every_step(office: Office) -> None:
    deal_id = office.open_deal()
    _, other = office.api.principal("consultant", project_ids=[office.api.project])
    deposit = {"amount_fen": DEPOSIT, "method": "cash", "signing_deadline": deadline(office.api)}
    # Another consultant neither sees nor moves this buyer's deal: for them it is missing
    office.call("GET", f"/v1/deals/{deal_id}", other, 404)
    office.call("POST", f"/v1/deals/{deal_id}/deposit", other, 404, json=deposit)
    body = {"client_id": office.client_id, "unit_id": office.units["1202"]}
    office.call("POST", "/v1/deals", other, 404, json=body)
    # Auditors read only
    office.call("GET", f"/v1/deals/{deal_id}", office.auditor)
    office.call("POST", f"/v1/deals/{deal_id}/deposit", office.auditor, 403, json=deposit)
    # Payments and cancellations are finance's and the manager's, not the consultant's
    office.step(deal_id, "deposit", deposit)
    office.step(deal_id, "subscription", {"price_fen": PRICE, "payment_plan": "full"})
    pay = {"amount_fen": 1_000_000, "kind": "other"}
    office.call("POST", f"/v1/deals/{deal_id}/payments", office.consultant, 403, json=pay)
    cancel = {"reason": "x", "fault": "no_fault"}
    office.call("POST", f"/v1/deals/{deal_id}/cancel", office.consultant, 403, json=cancel)
    office.step(deal_id, "payments", pay, office.manager)
    # A finance clerk of another project sees nothing of it
    _, elsewhere = office.api.principal("finance", project_ids=["elsewhere"])
    office.call("GET", f"/v1/deals/{deal_id}", elsewhere, 404)


def test_a_channel_agent_sees_only_its_own_commission(office: Office) -> None:
    deal_id = office.open_deal()
    deposit = {"amount_fen": DEPOSIT, "method": "cash", "signing_deadline": deadline(office.api)}
    office.step(deal_id, "deposit", deposit)
    office.step(deal_id, "subscription", {"price_fen": PRICE, "payment_plan": "full"})
    office.step(
        deal_id, "payments", {"amount_fen": PRICE - DEPOSIT, "kind": "full_payment"}, office.finance
    )
    mine = office.view("/v1/views/commissions", office.agent)["items"]
    assert [(r["payee_kind"], r["payee_id"]) for r in mine] == [("channel", "partner-a")]
    # Asking for another payee finds nothing: the list is the channel's own rows.
    others = office.call("GET", "/v1/views/commissions", office.agent, params={"payee_id": "x"})
    assert others.json()["items"] == []
    entries = office.view("/v1/views/commissions/entries", office.consultant)["items"]
    assert {e["payee_id"] for e in entries} == {office.consultant_id}


def test_a_buyer_in_a_deal_cannot_be_given_up(office: Office) -> None:
    office.open_deal()
    url = f"/v1/clients/{office.client_id}/loss-requests"
    response = office.call("POST", url, office.consultant, 409, json={"reason": "price"})
    assert response.json()["code"] == "client_in_deal"


# ------------------------------------------------------------ commission policy


def test_the_commission_policy_is_versioned_and_deals_keep_their_version(office: Office) -> None:
    url = f"{office.path}/commission-policy"
    assert office.call("GET", url, office.finance).json()["version"] == 0
    deal_id = office.open_deal()
    policy = {"default_channel_rate_bp": 300, "channel_rates_bp": {"partner-a": 500}}
    changed = office.call("PUT", url, office.manager, json=policy).json()
    assert (changed["version"], changed["channel_rates_bp"]) == (1, {"partner-a": 500})
    office.call("PUT", url, office.consultant, 403, json=policy)
    split = {"consultant_split_bp": {"first_receiver": 1, "accompanying": 1, "closing": 1}}
    bad = office.call("PUT", url, office.manager, 422, json=split)
    assert bad.json()["errors"][0]["field"] == "consultant_split_bp"

    deposit = {"amount_fen": DEPOSIT, "method": "cash", "signing_deadline": deadline(office.api)}
    office.step(deal_id, "deposit", deposit)
    office.step(deal_id, "subscription", {"price_fen": PRICE, "payment_plan": "full"})
    paid = office.step(
        deal_id, "payments", {"amount_fen": PRICE - DEPOSIT, "kind": "full_payment"}, office.finance
    )
    # Opened under version 0: the 1% default, not the new 5%
    assert paid["commission_policy_version"] == 0
    channel = [e for e in paid["commission"]["entries"] if e["payee_kind"] == "channel"]
    assert sum(e["amount_fen"] for e in channel) == PRICE * 100 // 10_000 * 7 // 10


def test_a_ruling_for_another_channel_moves_the_deal_and_its_commission(
    office: Office, api: Api
) -> None:
    # Given partner-b reported the buyer too (rejected: partner-a was first)
    agent_b_id, agent_b = api.principal("channel_agent", partner_id="partner-b")
    report = {
        "project_id": api.project,
        "partner_id": "partner-b",
        "agent_id": agent_b_id,
        "client_name": "王小明",
        "phone": PHONE,
    }
    report_b = office.call("POST", "/v1/reports", agent_b, 201, json=report).json()["report_id"]
    # And a deal that has earned partner-a its first stage
    deal_id = office.open_deal()
    deposit = {"amount_fen": DEPOSIT, "method": "cash", "signing_deadline": deadline(api)}
    office.step(deal_id, "deposit", deposit)
    office.step(deal_id, "subscription", {"price_fen": PRICE, "payment_plan": "full"})
    office.step(
        deal_id, "payments", {"amount_fen": 60_000_000, "kind": "down_payment"}, office.finance
    )
    dispute = {
        "claimant_id": "partner-b",
        "reason": "we brought him first",
        "report_id": report_b,
        "evidence_versions": [1],
    }
    url = f"/v1/clients/{office.client_id}/disputes"
    dispute_id = office.call("POST", url, agent_b, 201, json=dispute).json()["dispute_id"]

    # When the manager upholds partner-b's claim
    ruling = {"outcome": "upheld", "reason": "records show B", "evidence_versions": [1]}
    office.call("POST", f"/v1/disputes/{dispute_id}/ruling", office.manager, json=ruling)

    # Then the deal follows the ruling: partner-a reversed, partner-b accrued
    deal = office.call("GET", f"/v1/deals/{deal_id}", office.manager).json()
    assert (deal["attribution"]["partner_id"], deal["attribution"]["basis"]) == (
        "partner-b",
        "ruling",
    )
    ledger = office.view("/v1/views/commissions", office.finance, payee_kind="channel")["items"]
    payable = {r["payee_id"]: (r["accrued_fen"], r["payable_fen"]) for r in ledger}
    first_stage = PRICE * 100 // 10_000 * 7 // 10
    assert payable == {"partner-a": (first_stage, 0), "partner-b": (first_stage, first_stage)}


def test_a_returned_buyer_s_deal_text_from_before_the_erasure_stays_erased(office: Office) -> None:
    """A deal's reasons stored in clear (before sealing, ADR 0045) were judged by
    ``client.erased``: once the erased buyer came back, the old reason showed again."""
    api, app = office.api, office.api.container
    deal_id = office.open_deal()
    said = ctx()

    def clear_text_cancellation(now: Any) -> tuple[list[Any], None]:
        deal = app.deals.deal_state(uuid.UUID(deal_id))
        rules = app.policies.commission_rules(deal.project_id, deal.commission_policy_version)
        deal.cancel("王小明 13764472345 不买了", "no_fault", rules, now, said.trace)
        return [deal], None

    app.deals.uow.run(said, clear_text_cancellation)
    shown = office.call("GET", f"/v1/deals/{deal_id}", office.manager).json()
    assert shown["cancellation"]["reason"] == "王小明 13764472345 不买了"
    office.call("POST", f"/v1/clients/{office.client_id}/erasure", api.admin)
    visit = {
        "project_id": api.project,
        "phone": PHONE,
        "client_name": "李新",
        "consultant_id": office.consultant_id,
    }
    office.call("POST", "/v1/visits", office.consultant, 201, json=visit)

    again = office.call("GET", f"/v1/deals/{deal_id}", office.manager)
    assert again.json()["cancellation"]["reason"] == "[erased]", again.text
    assert "13764472345" not in again.text


def test_a_deal_is_answered_from_the_access_check_s_read(office: Office) -> None:
    """``GET /v1/deals/{id}`` read the deal again after the access check and the buyer
    twice (for the reader's notes, then for the erasure of the deal's texts): now the
    deal once (the check's) and the buyer once (own staff: the check's look at the
    buyer's owner serves the route too); the answer is the service's own."""
    api = office.api
    deal_id = office.open_deal()
    office.step(
        deal_id,
        "deposit",
        {"amount_fen": DEPOSIT, "method": "wechat_pay", "signing_deadline": deadline(api)},
    )
    store = api.container.uow.store
    real = store.events.get
    reads: Counter[str] = Counter()
    names: dict[Any, str] = {uuid.UUID(deal_id): "deal", uuid.UUID(office.client_id): "buyer"}

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads[names.get(args[0] if args else kwargs.get("originator_id"), "other")] += 1
        return real(*args, **kwargs)

    # The owner, own staff, is judged on the buyer too: the same read serves the route.
    for reader in (office.manager, office.consultant):
        reads.clear()
        setattr(store.events, "get", counted)  # noqa: B010
        try:
            shown = office.call("GET", f"/v1/deals/{deal_id}", reader).json()
        finally:
            delattr(store.events, "get")
        assert (reads["deal"], reads["buyer"]) == (1, 1), reads
        alone = api.container.deals.deal(uuid.UUID(deal_id), notes=True, documents=True)
        assert shown["deal_id"] == deal_id and shown["stage"] == alone.deal.stage
        assert shown == office.call("GET", f"/v1/deals/{deal_id}", reader).json()
    _, stranger = api.principal("consultant", project_ids=[api.project])
    office.call("GET", f"/v1/deals/{deal_id}", stranger, 404)
