"""Dashboards over HTTP: conversion rates per channel, project and consultant, the
manager's one-call summary in China time, a consultant's own funnel, and the pipeline
beside the 14-day signing forecast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.http import test_deals_api
from tests.http.test_deals_api import DEPOSIT, PRICE, Office, deadline

office = test_deals_api.office  # the deals tests' office, as a fixture here too

SECOND = "13812340002"  # reported by partner-a, never visited
WALK_IN = "13812340003"  # 自然到访 at the same consultant


@dataclass
class Day(Office):
    walk_in: str = ""


@pytest.fixture
def day(office: Office) -> Day:
    """The office's day: a second report, a walk-in graded A, a deal signed."""
    p = office.api.project
    report = {
        "project_id": p,
        "partner_id": "partner-a",
        "agent_id": "agent-x",
        "client_name": "李四",
        "phone": SECOND,
    }
    agent_id = office.view("/v1/reports", office.agent)["items"][0]["agent_id"]
    office.call("POST", "/v1/reports", office.agent, 201, json={**report, "agent_id": agent_id})
    visit = {
        "project_id": p,
        "phone": WALK_IN,
        "client_name": "赵六",
        "consultant_id": office.consultant_id,
    }
    walk_in = office.call("POST", "/v1/visits", office.consultant, 201, json=visit).json()
    grade = {"grade": "A", "reason": "预算充足，意向强"}
    office.call("POST", f"/v1/clients/{walk_in['client_id']}/grade", office.consultant, json=grade)
    office = Day(**vars(office), walk_in=walk_in["client_id"])
    deal_id = office.open_deal()
    office.step(
        deal_id,
        "deposit",
        {"amount_fen": DEPOSIT, "method": "wechat_pay", "signing_deadline": deadline(office.api)},
    )
    office.step(deal_id, "subscription", {"price_fen": PRICE, "payment_plan": "mortgage"})
    office.step(deal_id, "contract", {"contract_no": "HT-2026-0009", "price_fen": PRICE})
    return office


def conversion(o: Office, headers: dict[str, str], status: int = 200, **params: Any) -> Any:
    response = o.call(
        "GET",
        "/v1/views/conversion",
        headers,
        status,
        params={"after": o.position, "period": "all", **params},
    )
    body = response.json()
    return body["items"] if status == 200 else body


def test_conversion_rates_per_channel_project_and_consultant(day: Day) -> None:
    o, p = day, day.api.project
    channels = {row["partner_id"]: row for row in conversion(o, o.manager, group_by="channel")}
    assert channels["partner-a"] == {
        "project_id": p,
        "partner_id": "partner-a",
        "period": "all",
        "leads": 2,
        "visited": 1,
        "subscribed": 1,
        "signed": 1,
        "lead_to_visit": 0.5,
        "visit_to_subscription": 1.0,
        "subscription_to_contract": 1.0,
        "lead_to_contract": 0.5,
    }
    # A walk-in (自然到访) is a lead the day they walk in: they entered by visiting.
    natural = channels["natural"]
    assert (natural["leads"], natural["visited"], natural["lead_to_visit"]) == (1, 1, 1.0)
    (project,) = conversion(o, o.manager, group_by="project")
    assert (project["leads"], project["visited"], project["subscribed"], project["signed"]) == (
        3,
        2,
        1,
        1,
    )
    # Two reported buyers and one walk-in, two of them seen: never "100%" or more.
    assert project["lead_to_visit"] == 0.6667
    for group_by in ("project", "channel", "consultant"):
        for row in conversion(o, o.manager, group_by=group_by):
            rates = ("lead_to_visit", "visit_to_subscription", "subscription_to_contract")
            assert all(row[r] is None or 0 <= row[r] <= 1 for r in rates), row
    assert "partner_id" not in project
    months = conversion(o, o.manager, group_by="project", period="month")
    assert [m["period"] for m in months] == ["2026-03"]


def test_a_consultant_reads_their_own_funnel_and_nothing_wider(day: Day) -> None:
    o = day
    (mine,) = conversion(o, o.consultant, group_by="consultant")
    assert mine["consultant_id"] == o.consultant_id
    assert (mine["leads"], mine["visited"], mine["subscribed"], mine["signed"]) == (2, 2, 1, 1)
    assert mine["visit_to_subscription"] == 0.5
    assert "consultant_name" in mine
    conversion(o, o.consultant, 403, group_by="project")
    conversion(o, o.consultant, 403, group_by="consultant", consultant_id="someone-else")
    conversion(o, o.agent, 403, group_by="channel")
    bad = conversion(o, o.manager, 422, group_by="partner")
    assert bad["errors"][0]["field"].endswith("group_by")


def test_the_summary_answers_a_manager_in_one_call(day: Day) -> None:
    o, api = day, day.api

    def summary(headers: dict[str, str], status: int = 200) -> Any:
        return o.call(
            "GET", "/v1/views/summary", headers, status, params={"after": o.position}
        ).json()

    page = summary(o.manager)
    today = page["today"]
    assert page["time_zone"] == "Asia/Shanghai"
    assert today["from"].endswith("+08:00") and today["from"].startswith("2026-03-03T00:00")
    assert page["this_week"]["from"].startswith("2026-03-02T00:00")  # Monday
    assert page["this_month"]["from"].startswith("2026-03-01T00:00")
    assert (today["new_reports"], today["visits"], today["first_visits"]) == (2, 2, 2)
    # Three buyers are new (two reported, one walked in); two became a consultant's.
    assert (today["new_clients"], today["assignments"]) == (3, 2)
    assert (today["deals_opened"], today["subscriptions"], today["contracts"]) == (1, 1, 1)
    assert page["overdue_follow_ups"] == 0
    assert page["payments"]["month"] == "2026-03"
    assert page["payments"]["expected_fen"] == PRICE
    summary(o.consultant, 403)

    api.clock.advance(hours=25)  # the first follow-ups (24 h after each visit) are overdue
    later = summary(o.manager)
    assert later["today"]["new_reports"] == 0  # a new China day
    assert later["this_week"]["new_reports"] == 2
    assert later["overdue_follow_ups"] == 2
    assert later["escalated_follow_ups"] == 0
    assert (later["today"]["new_clients"], later["this_week"]["new_clients"]) == (0, 3)


def test_the_forecast_counts_deals_in_progress_and_a_grade_buyers(day: Day) -> None:
    o = day

    def pipeline() -> Any:
        return o.view("/v1/views/signing-forecast", o.manager)["pipeline"]

    before = pipeline()
    assert before["deals_in_progress"] == 0  # the one deal is signed
    assert before["a_grade_buyers_without_deal"] == 1
    body = {"client_id": o.walk_in, "unit_id": o.units["1202"]}
    o.call("POST", "/v1/deals", o.consultant, 201, json=body)
    after = pipeline()
    assert after["deals_in_progress"] == 1
    assert after["deals_by_stage"]["opened"]["deals"] == 1
    assert after["deals_in_progress_value_fen"] == 185_000_050
    assert after["a_grade_buyers_without_deal"] == 0
