"""A disputed buyer, shared by the evidence API and auditor's page tests.

partner-a reports the buyer first; partner-b's later report is rejected; the buyer
visits and is awarded to the consultant through partner-a's report; partner-b disputes
through its report and a manager upholds the claim, so the channel changes at the ruling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tests.http.conftest import Api
from tests.http.test_aftercare_api import Headers, agent, report, staff, visit

PHONE = "13812347777"


@dataclass
class Disputed:
    client_id: str
    owner_id: str
    owner: Headers
    partner_a: Headers
    partner_b: Headers
    report_a: str
    report_b: str
    dispute_id: str
    before_ruling: datetime
    after_ruling: datetime


def disputed_buyer(api: Api) -> Disputed:
    a_id, a = agent(api, "partner-a")
    b_id, b = agent(api, "partner-b")
    owner_id, owner = staff(api)
    _, manager = staff(api, "manager")
    first = report(api, "partner-a", a_id, a, PHONE)
    api.clock.advance(hours=1)
    late = report(api, "partner-b", b_id, b, PHONE)
    assert late["status"] == "rejected"
    api.clock.advance(hours=1)
    client_id = visit(api, owner_id, owner, PHONE)
    api.clock.advance(hours=1)
    opened = api.client.post(
        f"/v1/clients/{client_id}/disputes",
        json={"claimant_id": "partner-b", "reason": "我们更早带看", "report_id": late["report_id"]},
        headers=b,
    )
    assert opened.status_code == 201, opened.text
    api.clock.advance(hours=1)
    before = api.clock.now
    api.clock.advance(hours=1)
    ruled = api.client.post(
        f"/v1/disputes/{opened.json()['dispute_id']}/ruling",
        json={"outcome": "upheld", "reason": "带看记录在先", "evidence_versions": [4]},
        headers=manager,
    )
    assert ruled.status_code == 200, ruled.text
    api.clock.advance(hours=1)
    return Disputed(
        client_id,
        owner_id,
        owner,
        a,
        b,
        first["report_id"],
        late["report_id"],
        opened.json()["dispute_id"],
        before,
        api.clock.now,
    )
