"""Reports, visits, policy changes and the clock, against a small model of the 判客 rules.

The model below is written from the issue's wording, independently of
``domain.attribution``; the machine drives the real application (SQLite in a temporary
directory, fake clock) and compares every answer and the recorded streams with it.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from api import bodies
from domain.client import Client
from domain.masked_pool import MaskedReportPool
from domain.values import Actor
from tests.support import FakeClock, body_of, ctx, register_consultant, shown
from yingke.bootstrap import build
from yingke.settings import load_settings

PROJECT = "proj-stateful"
PARTNERS = ("A", "B", "C")
CONSULTANTS = ("cons-1", "cons-2")
# The first two numbers share the masked pattern 138****5678.
PHONES = ("13812345678", "13899995678", "13900001111")
PATTERNS = ("138****5678", "139****1111")
SPELLINGS = (
    lambda n: n,
    lambda n: f"+86 {n[:3]}-{n[3:7]}-{n[7:]}",
    lambda n: f"86{n}",
    lambda n: f"{n[:3]} {n[3:7]} {n[7:]}",
)
HOURS = (1, 2, 6, 12, 12, 24, 24, 48, 72, 24 * 11, 24 * 31)

policies = st.fixed_dictionaries(
    {
        "judge_rule": st.sampled_from(["report_first", "visit_first"]),
        "masked_reports": st.sampled_from(["allowed", "allowed", "forbidden"]),
        "report_validity": st.sampled_from(["PT12H", "P1D", "P3D"]),
        "protection": st.sampled_from(["P1D", "P2D", "P10D"]),
        "recent_visit_window": st.sampled_from(["PT12H", "P3D", "P7D"]),
    }
)
DURATIONS = {
    "PT12H": timedelta(hours=12),
    "P1D": timedelta(days=1),
    "P2D": timedelta(days=2),
    "P3D": timedelta(days=3),
    "P7D": timedelta(days=7),
    "P10D": timedelta(days=10),
    "P30D": timedelta(days=30),
}


# ----------------------------------------------------------------- the model


@dataclass
class Rules:
    version: int = 0
    judge_rule: str = "report_first"
    masked_reports: str = "allowed"
    validity: timedelta = timedelta(days=3)
    protection: timedelta = timedelta(days=30)
    # The owner's own visit extends protection (defaults; the machine never changes them).
    extension: timedelta = timedelta(days=3)
    protection_max: timedelta = timedelta(days=90)
    # A buyer seen at the office this recently cannot be reported (防截客).
    recent_visit: timedelta = timedelta(days=7)


@dataclass
class Report:
    report_id: str
    partner: str
    filed_at: datetime
    masked: bool
    order: int
    status: str
    reason: str | None
    valid_until: datetime | None
    matched_to: str | None = None  # the buyer's phone, once a masked report is consumed

    def valid(self, now: datetime) -> bool:
        return self.status == "accepted" and self.valid_until is not None and now < self.valid_until

    def status_at(self, now: datetime) -> str:
        if self.status == "accepted" and not self.valid(now):
            return "expired"
        return self.status


@dataclass
class Owner:
    consultant: str
    partner: str | None
    report_id: str | None
    basis: str
    since: datetime
    protected_until: datetime
    policy_version: int


@dataclass
class Buyer:
    reports: list[str] = field(default_factory=list)
    owner: Owner | None = None
    events: list[str] = field(default_factory=lambda: ["ClientRegistered"])
    passed_over: set[str] = field(default_factory=set)  # masked reports this buyer outranked
    visits: list[datetime] = field(default_factory=list)


@dataclass
class Pool:
    reports: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=lambda: ["PoolOpened"])


# The events this model predicts. Later features add bookkeeping events (follow-up
# schedules) to the same streams; the comparison looks past those.
TRACKED = {
    "ClientRegistered",
    "ReportFiled",
    "ReportAccepted",
    "ReportRejected",
    "ClientVisited",
    "MaskedReportMatched",
    "ReportConfirmed",
    "ReportClosed",
    "MaskedReportPassedOver",
    "OwnershipAwarded",
    "ProtectionExtended",
    "PoolOpened",
    "MaskedReportConsumed",
}


def tracked(events: Any) -> list[str]:
    return [name for name in (type(e).__name__ for e in events) if name in TRACKED]


def pattern_of(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


# --------------------------------------------------------------- the machine


class OwnershipMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.data_dir = tempfile.mkdtemp(prefix="yingke-stateful-")
        self.clock = FakeClock()
        self.container = build(load_settings({"YINGKE_DATA_DIR": self.data_dir}), self.clock)
        self.app = self.container
        for consultant in CONSULTANTS:
            register_consultant(self.app, PROJECT, consultant)
        self.policy = Rules()
        self.reports: dict[str, Report] = {}
        self.buyers: dict[str, Buyer] = {}
        self.pools: dict[str, Pool] = {}
        self.filed = 0

    def teardown(self) -> None:
        self.container.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # ------------------------------------------------------------- commands

    @initialize(policy=st.none() | policies)
    def start(self, policy: dict[str, str] | None) -> None:
        if policy is not None:
            self.change_policy(policy)

    @rule(policy=policies)
    def change_policy(self, policy: dict[str, str]) -> None:
        body = body_of(
            self.app.policies.set_policy(ctx(Actor("manager-1", "manager")), PROJECT, policy)
        )
        self.policy = Rules(
            version=self.policy.version + 1,
            judge_rule=policy["judge_rule"],
            masked_reports=policy["masked_reports"],
            validity=DURATIONS[policy["report_validity"]],
            protection=DURATIONS[policy["protection"]],
            recent_visit=DURATIONS[policy["recent_visit_window"]],
        )
        assert body["version"] == self.policy.version

    @rule(hours=st.sampled_from(HOURS))
    def advance_clock(self, hours: int) -> None:
        self.clock.advance(hours=hours)

    @rule(data=st.data())
    def advance_clock_to_a_deadline(self, data: st.DataObject) -> None:
        """Land exactly on a report's validity end or an owner's protection end, where an
        off-by-one in the rules would show."""
        now = self.clock.now
        deadlines = sorted(
            {r.valid_until for r in self.reports.values() if r.valid_until and r.valid_until > now}
            | {
                b.owner.protected_until
                for b in self.buyers.values()
                if b.owner and b.owner.protected_until > now
            }
        )
        if deadlines:
            target = data.draw(st.sampled_from(deadlines[:3]), label="deadline")
            self.clock.advance(seconds=(target - now).total_seconds())

    @rule(
        partner=st.sampled_from(PARTNERS),
        phone=st.sampled_from(PHONES),
        spelling=st.sampled_from(SPELLINGS),
    )
    def file_full_report(self, partner: str, phone: str, spelling: Callable[[str], str]) -> None:
        now, rules = self.clock.now, self.policy
        buyer = self.buyers.setdefault(phone, Buyer())
        mine = [self.reports[r] for r in buyer.reports]
        valid = [r for r in mine if r.valid(now)]
        owner = buyer.owner
        if owner is not None and now < owner.protected_until:
            reason: str | None = "duplicate" if owner.partner == partner else "protected"
        elif self._seen_lately(buyer, now):
            reason = "recent_visit"
        elif any(r.partner == partner for r in valid):
            reason = "duplicate"
        elif rules.judge_rule == "report_first" and valid:
            reason = "protected"
        else:
            reason = None

        body = self._file(partner, spelling(phone))

        self._expect_filing(body, reason)
        assert body["client_id"] == str(self.client_id(phone))
        buyer.reports.append(body["report_id"])
        buyer.events += ["ReportFiled", "ReportRejected" if reason else "ReportAccepted"]

    @rule(partner=st.sampled_from(PARTNERS), pattern=st.sampled_from(PATTERNS))
    def file_masked_report(self, partner: str, pattern: str) -> None:
        now = self.clock.now
        pool = self.pools.setdefault(pattern, Pool())
        valid = [self.reports[r] for r in pool.reports if self.reports[r].valid(now)]
        if self.policy.masked_reports == "forbidden":
            reason: str | None = "masked_not_allowed"
        elif any(r.partner == partner for r in valid):
            reason = "duplicate"
        else:
            reason = None

        body = self._file(partner, pattern)

        self._expect_filing(body, reason, masked=True)
        assert body["client_id"] is None
        pool.reports.append(body["report_id"])
        pool.events += ["ReportFiled", "ReportRejected" if reason else "ReportAccepted"]

    @rule(
        phone=st.sampled_from(PHONES),
        spelling=st.sampled_from(SPELLINGS),
        partner=st.none() | st.sampled_from(PARTNERS),
        consultant=st.sampled_from(CONSULTANTS),
    )
    def register_visit(
        self, phone: str, spelling: Callable[[str], str], partner: str | None, consultant: str
    ) -> None:
        now, rules = self.clock.now, self.policy
        buyer = self.buyers.setdefault(phone, Buyer())
        pool = self.pools.get(pattern_of(phone), Pool())
        events = ["ClientVisited"]
        open_claims = [
            self.reports[r]
            for r in buyer.reports + pool.reports
            if self.reports[r].valid(now) and r not in buyer.passed_over
        ]
        # A masked report filed while the buyer had been at the office within the window
        # never counts for this buyer (the full-number ones were refused when filed).
        void = [r for r in open_claims if r.masked and self._seen_lately(buyer, r.filed_at)]
        candidates = [r for r in open_claims if r not in void]
        ranked = sorted(candidates, key=lambda r: (r.filed_at, r.masked, r.order))
        owner = buyer.owner
        winner: Report | None = None
        why = "lost_to_earlier_report"
        if owner is not None and now < owner.protected_until:
            outcome = "protected"
            # The owner's buyer came back: protection moves to now + extension if that is
            # later, never past since + maximum.
            until = max(owner.protected_until, now + rules.extension)
            until = min(until, owner.since + rules.protection_max)
            if until > owner.protected_until:
                events.append("ProtectionExtended")
                owner = replace(owner, protected_until=until)
        elif not ranked:
            outcome = "walk_in"
        else:
            outcome = "report"
            winner = ranked[0]
            accompanied = [r for r in ranked if r.partner == partner]
            if rules.judge_rule == "visit_first" and partner is not None and accompanied:
                winner, why = accompanied[0], "lost_to_accompanied_visit"
            if winner.masked:
                events.append("MaskedReportMatched")
            events.append("ReportConfirmed")
            # Losing full reports are closed; masked losers stay in their pool for other
            # buyers on the pattern but are passed over for this buyer from now on.
            events += [
                "MaskedReportPassedOver" if r.masked else "ReportClosed"
                for r in ranked
                if r is not winner
            ]
        if outcome != "protected":
            events += ["MaskedReportPassedOver"] * len(void)
            owner = Owner(
                consultant=consultant,
                partner=winner.partner if winner else None,
                report_id=winner.report_id if winner else None,
                basis="report" if winner else "walk_in",
                since=now,
                protected_until=now + rules.protection,
                policy_version=rules.version,
            )
            events.append("OwnershipAwarded")

        result = self.app.visits.register_visit(
            ctx(Actor(consultant, "consultant")),
            project_id=PROJECT,
            phone=spelling(phone),
            client_name="王小明",
            consultant_id=consultant,
            partner_id=partner,
            agent_id=f"agent-{partner}" if partner else None,
        )

        body = shown(bodies.visit, result.value)
        assert body["outcome"] == outcome
        assert body["client_id"] == str(self.client_id(phone))
        assert owner is not None
        expected_owner = {
            "status": "owned",
            "consultant_id": owner.consultant,
            "partner_id": owner.partner,
            "report_id": owner.report_id,
            "basis": owner.basis,
            "since": owner.since.isoformat(),
            "protected_until": owner.protected_until.isoformat(),
            "policy_version": owner.policy_version,
        }
        assert {k: body["owner"][k] for k in expected_owner} == expected_owner
        # Only now that the application agreed, move the model on.
        buyer.owner = owner
        buyer.visits.append(now)
        if outcome != "protected":
            buyer.passed_over.update(r.report_id for r in void)
        buyer.events += events
        if winner is not None:
            self._settle(phone, buyer, ranked, winner, why)
        history = [e["type"] for e in self.app.clients.history(self.client_id(phone))]
        assert [t for t in history if t in TRACKED] == buyer.events

    @rule(
        filings=st.lists(
            st.tuples(st.sampled_from(PARTNERS), st.booleans(), st.sampled_from((0, 0, 0, 1, 5))),
            min_size=1,
            max_size=4,
        ),
        phone=st.sampled_from(PHONES),
        accompanying=st.sampled_from([None, -1, -2, 0]),
        consultant=st.sampled_from(CONSULTANTS),
    )
    def several_channels_report_then_the_buyer_visits(
        self,
        filings: list[tuple[str, bool, int]],
        phone: str,
        accompanying: int | None,
        consultant: str,
    ) -> None:
        """The contested case, made common: reports (full or masked) a few hours apart,
        then a visit. Each part goes through the same checks as the single rules."""
        for filing_partner, masked, gap in filings:
            if masked:
                self.file_masked_report(filing_partner, pattern_of(phone))
            else:
                self.file_full_report(filing_partner, phone, SPELLINGS[0])
            self.clock.advance(hours=gap)
        # Usually accompanied by one of these channels, often a later one.
        partner = None if accompanying is None else filings[accompanying % len(filings)][0]
        self.register_visit(phone, SPELLINGS[1], partner, consultant)

    def _settle(
        self, phone: str, buyer: Buyer, ranked: list[Report], winner: Report, why: str
    ) -> None:
        winner.status = "confirmed"
        if winner.masked:
            winner.matched_to = phone
            buyer.reports.append(winner.report_id)
            self.pools[pattern_of(phone)].events.append("MaskedReportConsumed")
        buyer.passed_over.update(r.report_id for r in ranked if r is not winner and r.masked)
        for loser in ranked:
            if loser is not winner and not loser.masked:
                loser.status = "closed"
                loser.reason = (
                    "superseded_by_own_report" if loser.partner == winner.partner else why
                )

    def _file(self, partner: str, phone: str) -> dict[str, Any]:
        result = self.app.reports.file_report(
            ctx(Actor(f"agent-{partner}", "channel_agent")),
            project_id=PROJECT,
            partner_id=partner,
            agent_id=f"agent-{partner}",
            client_name="王小明",
            phone=phone,
        )
        return shown(bodies.filed_report, result.value)

    def _expect_filing(
        self, body: dict[str, Any], reason: str | None, masked: bool = False
    ) -> None:
        now = self.clock.now
        assert (body["status"], body["reason"]) == ("rejected" if reason else "accepted", reason)
        assert body["policy_version"] == self.policy.version
        valid_until = None if reason else now + self.policy.validity
        assert body["valid_until"] == (valid_until.isoformat() if valid_until else None)
        assert body["masked"] is masked
        self.filed += 1
        self.reports[body["report_id"]] = Report(
            report_id=body["report_id"],
            partner=body["partner_id"],
            filed_at=now,
            masked=masked,
            order=self.filed,
            status="rejected" if reason else "accepted",
            reason=reason,
            valid_until=valid_until,
        )

    def _seen_lately(self, buyer: Buyer, moment: datetime) -> bool:
        before = [t for t in buyer.visits if t <= moment]
        return bool(before) and moment - max(before) < self.policy.recent_visit

    def client_id(self, phone: str) -> uuid.UUID:
        return self.app.clients.keyer.client_id(PROJECT, phone)

    # ----------------------------------------------------------- invariants

    @invariant()
    def every_buyer_matches_the_model(self) -> None:
        now = self.clock.now
        confirmed: Counter[str] = Counter()
        for phone, buyer in self.buyers.items():
            client = self.app.clients.client(self.client_id(phone))
            self._same_owner(client, buyer.owner)
            assert sorted(client.reports) == sorted(buyer.reports)
            for report_id, state in client.reports.items():
                expected = self.reports[report_id]
                assert (state.status_at(now), state.reason) == (
                    expected.status_at(now),
                    expected.reason,
                ), report_id
                if state.status == "confirmed":
                    confirmed[report_id] += 1
            assert tracked(self.app.store.events.get(client.id)) == buyer.events
            self._awards_never_overlap(client.id)
        # A report is consumed at most once, across every buyer of the project.
        assert all(n == 1 for n in confirmed.values()), confirmed

    @invariant()
    def every_masked_pool_matches_the_model(self) -> None:
        now = self.clock.now
        for pattern, expected_pool in self.pools.items():
            pool_id = self.app.clients.keyer.masked_pool_id(PROJECT, pattern)
            pool: MaskedReportPool = self.app.store.repository.get(pool_id)
            assert isinstance(pool, MaskedReportPool)
            assert list(pool.reports) == expected_pool.reports
            for report_id, state in pool.reports.items():
                expected = self.reports[report_id]
                assert (state.status_at(now), state.reason) == (
                    expected.status_at(now),
                    expected.reason,
                )
                matched = expected.matched_to
                assert state.client_id == (str(self.client_id(matched)) if matched else None)
            assert tracked(self.app.store.events.get(pool_id)) == expected_pool.events

    def _same_owner(self, client: Client, owner: Owner | None) -> None:
        if owner is None:
            assert client.owner is None
            return
        assert client.owner is not None
        actual = client.owner
        assert (actual.consultant_id, actual.partner_id, actual.report_id, actual.basis) == (
            owner.consultant,
            owner.partner,
            owner.report_id,
            owner.basis,
        )
        assert (actual.since, actual.protected_until, actual.policy_version) == (
            owner.since,
            owner.protected_until,
            owner.policy_version,
        )

    def _awards_never_overlap(self, client_id: uuid.UUID) -> None:
        """At most one owner at any instant: no award while another is protected."""
        owner: str | None = None
        until: datetime | None = None
        for event in self.app.store.events.get(client_id):
            if isinstance(event, Client.OwnershipAwarded):
                assert until is None or event.since >= until
                assert event.previous_consultant_id == owner
                owner, until = event.consultant_id, event.protected_until
            elif isinstance(event, Client.ProtectionExtended):
                assert until is not None and event.protected_until > until
                until = event.protected_until


OwnershipMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOwnership = OwnershipMachine.TestCase
