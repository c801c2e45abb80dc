"""The leak matrix: every documented operation, called as every role its table entry
allows, with the other party's ids (another project, another team's buyer, another
consultant's buyer, another partner's report, dispute, deal and commission).

A leak is a 2xx carrying an object the caller does not relate to, an answer for such an
object that differs from the answer for a missing one (status or problem body, apart from
``instance`` and ``request_id``), or, in a list or view, any id of such an object. The
expected relation comes from ``api.authorization.TABLE``; which objects a relation admits
is modelled here from the scenario's facts (projects, teams, owners, partners), so the
table and the code are checked against each other. An operation the matrix does not know
how to call fails the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.access import SERVERS, Relation, may
from api.authorization import TABLE
from api.deps import Caller
from api.openapi import _api_routes
from domain.vocabulary import ROLES
from tests.http.conftest import Api, make_api
from tests.support import unique

Headers = dict[str, str]
PRICE = 100_000_000
UNITS_CSV = (
    "building,number,rooms,area,floor,orientation,list_price\n"
    "1栋,0101,3,89.50,1,south,1000000\n"
    "1栋,0102,3,89.50,1,south,1000000\n"
    "1栋,0103,3,89.50,1,south,1000000\n"
    "1栋,0104,3,89.50,1,south,1000000\n"
    "1栋,0105,3,89.50,1,south,1000000\n"
)
CLIENTS_CSV = "姓名,手机,置业顾问\n张三,13911112222,c-x\n"
# The ids in these filters name an object; a list asked for a foreign one shows nothing.
FILTERS = ("client_id", "consultant_id", "partner_id", "project_id", "deal_id", "payee_id")
# Operations with no object to be foreign to: public, every role alike, or admin only.
NO_OBJECT = {
    "healthz",
    "readyz",
    "metrics",
    "keys",
    "verify",
    "views_status",
    "register_principal",
    "get_principal",
    "update_principal",
    "revoke_principal",
}
# Lists with a required query parameter: the value every role may ask with.
LIST_PARAMS: dict[str, dict[str, str]] = {"conversion": {"group_by": "consultant"}}
# Operations whose object is named in the body rather than the path.
BODY_OBJECT = {
    "lookup": "project",
    "file_report": "project",
    "register_visit": "project",
    "open_deal": "client",
}


@dataclass
class Me:
    role: str
    id: str
    headers: Headers
    projects: tuple[str, ...] | None  # None: every project
    team: str | None = None
    partner: str | None = None


@dataclass
class Obj:
    """One fact of the scenario, with who it concerns."""

    name: str
    kind: str  # client, deal, report, dispute, consultant, project, unit, partner, job
    id: str
    project: str | None
    consultants: frozenset[str] = frozenset()
    partners: frozenset[str] = frozenset()
    markers: tuple[str, ...] = ()
    phone: str = ""
    spare_unit: str = ""


@dataclass
class World:
    api: Api
    p: str
    q: str
    me: dict[str, Me] = field(default_factory=dict)
    objects: list[Obj] = field(default_factory=list)
    team_of: dict[str, str] = field(default_factory=dict)
    spare_units: dict[str, list[str]] = field(default_factory=dict)

    def of(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.kind == kind]

    def named(self, name: str) -> Obj:
        return next(o for o in self.objects if o.name == name)

    def admits(self, me: Me, relation: Relation, obj: Obj) -> bool:
        """What the relation means, stated on the scenario's facts (README, ADR 0043)."""
        if relation == "any":
            return True
        if obj.kind == "partner":
            # Partners are told apart only by the partner relation.
            return relation != "partner" or obj.id == me.partner
        if me.projects is not None and obj.project not in me.projects:
            return False
        if relation == "project" or obj.kind in ("project", "unit"):
            return True
        if relation == "partner":
            return me.partner in obj.partners
        if relation == "own":
            return me.id in obj.consultants
        return any(c == me.id or self.team_of.get(c) == me.team for c in obj.consultants)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def build_world(api: Api) -> World:
    client, admin = api.client, api.admin
    w = World(api, api.project, unique("proj-q"))
    p, q = w.p, w.q

    def principal(
        role: str,
        projects: list[str] | None = None,
        team: str | None = None,
        partner: str | None = None,
    ) -> Me:
        pid = unique(role)
        body: dict[str, Any] = {"id": pid, "role": role}
        if projects:
            body["project_ids"] = projects
        if team:
            body["team_id"] = team
            w.team_of[pid] = team
        if partner:
            body["partner_id"] = partner
        key = ok(client.post("/v1/principals", json=body, headers=admin), 201)["key"]
        return Me(role, pid, api.auth(key), tuple(projects) if projects else None, team, partner)

    partner_a, partner_b = unique("partner-a"), unique("partner-b")
    team_1, team_2 = unique("team-1"), unique("team-2")
    w.me = {
        "admin": Me("admin", "admin", admin, None),
        "manager": principal("manager", [p]),
        "supervisor": principal("supervisor", [p], team_1),
        "consultant": principal("consultant", [p], team_1),
        "finance": principal("finance", [p]),
        "channel_agent": principal("channel_agent", partner=partner_a),
        "auditor": principal("auditor"),
        "service": principal("service"),
    }
    assert set(w.me) == set(ROLES)
    c1 = w.me["consultant"]
    c2 = principal("consultant", [p], team_1)  # a colleague in the same team
    c3 = principal("consultant", [p], team_2)  # another team
    c4 = principal("consultant", [p], team_2)
    cq = principal("consultant", [q])  # another project
    cq2 = principal("consultant", [q])
    agent_a, agent_b = w.me["channel_agent"], principal("channel_agent", partner=partner_b)

    for project in (p, q):
        imported = client.post(
            f"/v1/projects/{project}/units:import",
            content=UNITS_CSV.encode(),
            headers={**admin, "Content-Type": "text/csv"},
        )
        w.spare_units[project] = [u["unit_id"] for u in ok(imported)["units"]]

    def report(agent: Me, project: str, phone: str) -> dict[str, Any]:
        body = {
            "project_id": project,
            "partner_id": agent.partner,
            "agent_id": agent.id,
            "client_name": "王小明",
            "phone": phone,
        }
        filed: dict[str, Any] = ok(
            client.post("/v1/reports", json=body, headers=agent.headers), 201
        )
        return filed

    def buyer(name: str, project: str, owner: Me, agent: Me, phone: str) -> Obj:
        filed = report(agent, project, phone)
        assert filed["status"] == "accepted", filed
        visit = {
            "project_id": project,
            "phone": phone,
            "client_name": "王小明",
            "consultant_id": owner.id,
            "partner_id": agent.partner,
        }
        client_id = ok(client.post("/v1/visits", json=visit, headers=owner.headers), 201)[
            "client_id"
        ]
        masked = f"{phone[:3]}****{phone[-4:]}"
        units = w.spare_units[project]
        unit_id, spare = units.pop(), units[-1]
        deal_id = ok(
            client.post(
                "/v1/deals", json={"client_id": client_id, "unit_id": unit_id}, headers=admin
            ),
            201,
        )["deal_id"]
        deadline = (api.clock.now + timedelta(days=7)).isoformat()
        for step, body in (
            ("deposit", {"amount_fen": 5_000_000, "method": "cash", "signing_deadline": deadline}),
            ("subscription", {"price_fen": PRICE, "payment_plan": "full"}),
            ("payments", {"amount_fen": PRICE - 5_000_000, "kind": "full_payment"}),
        ):
            ok(client.post(f"/v1/deals/{deal_id}/{step}", json=body, headers=admin))
        who, partners = frozenset({owner.id}), frozenset({agent.partner or ""})
        w.objects += [
            Obj(name, "client", client_id, project, who, partners, (client_id, masked), phone),
            Obj(f"{name} deal", "deal", deal_id, project, who, partners, (deal_id,)),
            Obj(
                f"{name} report",
                "report",
                filed["report_id"],
                project,
                who,
                partners,
                (filed["report_id"],),
            ),
        ]
        buyer_obj = w.objects[-3]
        buyer_obj.spare_unit = spare
        return buyer_obj

    mine = buyer("mine", p, c1, agent_a, "13800000101")
    colleague = buyer("colleague's", p, c2, agent_b, "13800000202")
    other_team = buyer("other team's", p, c3, agent_b, "13800000303")
    elsewhere = buyer("other project's", q, cq, agent_b, "13800000404")

    # Partner B reported the caller's own buyer too late: its rejected report, and its
    # dispute through that report, are the other partner's.
    late = report(agent_b, p, mine.phone)
    assert late["status"] == "rejected", late
    w.objects.append(
        Obj(
            "other partner's rejected report",
            "report",
            late["report_id"],
            p,
            frozenset({c1.id}),
            frozenset({partner_b}),
            (late["report_id"],),
        )
    )

    def dispute(name: str, on: Obj, by: Me, claimant: str, **extra: Any) -> None:
        body = {"claimant_id": claimant, "reason": "我们先带看", **extra}
        opened = ok(
            client.post(f"/v1/clients/{on.id}/disputes", json=body, headers=by.headers), 201
        )
        channel = by.role == "channel_agent"
        w.objects.append(
            Obj(
                name,
                "dispute",
                opened["dispute_id"],
                on.project,
                on.consultants | (frozenset() if channel else frozenset({claimant})),
                frozenset({claimant}) if channel else frozenset(),
                (opened["dispute_id"],),
            )
        )

    dispute("other partner's dispute", mine, agent_b, partner_b, report_id=late["report_id"])
    dispute("colleague's dispute", colleague, c3, c3.id)
    dispute("other team's dispute", other_team, c4, c4.id)
    dispute("other project's dispute", elsewhere, cq2, cq2.id)

    for who in (c2, c3, cq):
        w.objects.append(
            Obj(
                f"consultant {who.id}",
                "consultant",
                who.id,
                who.projects[0] if who.projects else None,
                frozenset({who.id}),
                markers=(who.id,),
            )
        )
    w.objects.append(Obj("other project", "project", q, q, markers=(q,)))
    # A what-if replay of the other project: the job belongs to that project.
    replay = {"from": "2026-01-01T00:00:00+08:00", "to": "2026-02-01T00:00:00+08:00"}
    job = client.post(
        f"/v1/projects/{q}/what-if", json={**replay, "policy": {"overrides": {}}}, headers=admin
    )
    job_id = ok(job, 202)["job_id"]
    w.objects.append(Obj("other project's job", "job", job_id, q, markers=(job_id,)))
    w.objects.append(Obj("other partner", "partner", partner_b, None, markers=(partner_b,)))
    w.objects.append(
        Obj("other project's unit", "unit", w.spare_units[q][0], q, markers=(w.spare_units[q][0],))
    )
    api.container.follower.catch_up()
    # The scenario holds what the matrix needs: the other partner earns commission.
    rows = ok(client.get("/v1/views/commissions", headers=admin))["items"]
    assert partner_b in {r["payee_id"] for r in rows}
    return w


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path: Path = tmp_path_factory.mktemp("leaks")
    for api in make_api(path):
        yield build_world(api)


# --------------------------------------------------------------------- calling


Body = Callable[[World, Me, Obj | None, str], dict[str, Any]]


def _json(body: dict[str, Any]) -> Body:
    return lambda w, me, obj, target: {"json": body}


def _deadline(w: World) -> str:
    return (w.api.clock.now + timedelta(days=7)).isoformat()


BODIES: dict[str, Body] = {
    "set_policy": _json({}),
    "set_commission_policy": _json({}),
    "file_report": lambda w, me, obj, target: {
        "json": {
            "project_id": target,
            "partner_id": me.partner or "partner-x",
            "agent_id": me.id,
            "client_name": "韩梅梅",
            "phone": "13800009901",
        }
    },
    "register_visit": lambda w, me, obj, target: {
        "json": {
            "project_id": target,
            "phone": "13800009902",
            "client_name": "韩梅梅",
            "consultant_id": me.id,
        }
    },
    "lookup": lambda w, me, obj, target: {"json": {"project_id": target, "phone": "13800000404"}},
    "open_deal": lambda w, me, obj, target: {
        "json": {"client_id": target, "unit_id": obj.spare_unit if obj else str(uuid.uuid4())}
    },
    "log_follow_up": _json({"method": "call", "summary": "约看房", "effective": True}),
    "change_grade": _json({"grade": "A", "reason": "想买"}),
    "update_profile": _json({"districts": ["浦东"]}),
    "transfer": lambda w, me, obj, target: {
        "json": {"to_consultant_id": w.me["consultant"].id, "reason": "调岗"}
    },
    "request_loss": _json({"reason": "price"}),
    "approve_loss": _json({"comment": "ok"}),
    "reject_loss": _json({"comment": "no"}),
    "claim": _json({}),
    "approve_claim": _json({"comment": "ok"}),
    "reject_claim": _json({"comment": "no"}),
    "open_dispute": lambda w, me, obj, target: {
        "json": {"claimant_id": me.partner or me.id, "reason": "我们先带看"}
    },
    "rule": _json({"outcome": "dismissed", "reason": "证据不足", "evidence_versions": [1]}),
    "appeal": _json({"reason": "不服"}),
    "depart": _json({"to_pool": True}),
    "import_units": lambda w, me, obj, target: {
        "content": UNITS_CSV.replace("1栋", "9栋").encode(),
        "headers": {"Content-Type": "text/csv"},
    },
    "import_clients": lambda w, me, obj, target: {
        "content": CLIENTS_CSV.encode(),
        "headers": {"Content-Type": "text/csv"},
        "params": {"dry_run": "true"},
    },
    "deposit": lambda w, me, obj, target: {
        "json": {"amount_fen": 100, "method": "cash", "signing_deadline": _deadline(w)}
    },
    "subscription": _json({"price_fen": PRICE, "payment_plan": "full"}),
    "loan": _json({"bank": "ICBC", "amount_fen": 100}),
    "approve_loan": _json({}),
    "refuse_loan": _json({"reason": "资料不全"}),
    "contract": _json({"contract_no": "HT-LEAK", "price_fen": PRICE}),
    "filing": _json({}),
    "payment": _json({"amount_fen": 100, "kind": "other"}),
    "certificate": _json({}),
    "cancel": _json({"reason": "退房", "fault": "no_fault"}),
    "swap": lambda w, me, obj, target: {
        "json": {"unit_id": w.spare_units[w.p][0], "reason": "换房"}
    },
    "rename": _json({"buyer_name": "李四", "reason": "更名"}),
    "what_if": _json(
        {
            "from": "2026-01-01T00:00:00+08:00",
            "to": "2026-02-01T00:00:00+08:00",
            "policy": {"overrides": {"protection": "P15D"}},
        }
    ),
}


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    has_body: bool
    query: tuple[str, ...]

    @property
    def kind(self) -> str | None:
        """The kind of object the operation names, or None for a list or no object."""
        for param, kind in (
            ("{client_id}", "client"),
            ("{deal_id}", "deal"),
            ("{dispute_id}", "dispute"),
            ("{report_id}", "report"),
            ("{consultant_id}", "consultant"),
            ("{job_id}", "job"),
            ("{unit_id}", "unit"),
            ("{project_id}", "project"),
        ):
            if param in self.path:
                return kind
        return BODY_OBJECT.get(self.name)


def operations(app: FastAPI) -> list[Operation]:
    names = {
        (route.path_format, method.lower()): route.endpoint.__name__
        for route in _api_routes(app)
        for method in route.methods or ()
    }
    found = []
    for path, item in app.openapi()["paths"].items():
        for method, spec in item.items():
            if method not in ("get", "post", "put", "delete", "patch"):
                continue
            query = tuple(p["name"] for p in spec.get("parameters", []) if p["in"] == "query")
            found.append(
                Operation(names[(path, method)], method, path, "requestBody" in spec, query)
            )
    return found


def url_for(w: World, op: Operation, target: str, project: str | None = None) -> str:
    path = op.path
    if op.kind == "unit":
        path = path.replace("{project_id}", project or w.p).replace("{unit_id}", target)
    path = path.replace("{project_id}", target if op.kind == "project" else w.p)
    for param in ("client_id", "deal_id", "dispute_id", "report_id", "consultant_id", "job_id"):
        path = path.replace("{" + param + "}", target)
    path = path.replace("{request_id}", "loss-x").replace("{claim_id}", "claim-x")
    assert "{" not in path, path
    return path


def call(
    w: World,
    op: Operation,
    me: Me,
    url: str,
    obj: Obj | None,
    target: str,
    broken: bool = False,
) -> httpx.Response:
    """One request; ``broken`` sends a body no operation accepts (a JSON list)."""
    kwargs: dict[str, Any] = {}
    if op.has_body:
        kwargs = (
            {"json": ["not", "an", "object"]} if broken else BODIES[op.name](w, me, obj, target)
        )
    headers = {**me.headers, **kwargs.pop("headers", {})}
    response: httpx.Response = w.api.client.request(
        op.method.upper(), url, headers=headers, **kwargs
    )
    return response


def shape(response: httpx.Response) -> tuple[int, Any]:
    """The answer with what names this very request (its path, its request id) left out."""
    try:
        body = response.json()
    except ValueError:
        return response.status_code, response.text
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("instance", "request_id")}
    return response.status_code, body


# ------------------------------------------------------------------------ tests


def test_every_operation_is_in_the_matrix(world: World) -> None:
    app = world.api.client.app
    assert isinstance(app, FastAPI)
    unknown = []
    for op in operations(app):
        if op.name in NO_OBJECT or op.kind is not None or op.method == "get":
            if op.has_body and op.name not in BODIES and op.name not in NO_OBJECT:
                unknown.append((op.name, "no sample body"))
            continue
        unknown.append((op.name, "no object kind and not a list"))
    assert not unknown, unknown
    assert {op.name for op in operations(app)} == set(TABLE)


def test_no_operation_leaks_the_other_partys_objects(world: World) -> None:
    app = world.api.client.app
    assert isinstance(app, FastAPI)
    w = world
    leaks: list[tuple[str, str, str, str, int, str]] = []
    tried: dict[tuple[str, str], int] = {}
    calls = 0
    for op in operations(app):
        entry = TABLE[op.name]
        if op.name in NO_OBJECT or op.kind is None or entry.public:
            continue
        for role in entry.roles or ():
            me, relation = w.me[role], entry.relation(role)
            assert relation is not None
            missing_target = unique("missing") if op.kind == "project" else str(uuid.uuid4())
            missing = call(w, op, me, url_for(w, op, missing_target), None, missing_target)
            calls += 1
            # A project is not a stored thing: one nobody used yet is still a project.
            if 200 <= missing.status_code < 300 and op.kind != "project":
                leaks.append((op.name, role, "a missing id", "", missing.status_code, ""))
            candidates: list[tuple[Obj, str | None]] = [
                (o, o.project) for o in w.of(op.kind) if not w.admits(me, relation, o)
            ]
            if op.kind == "unit":
                # Another project's unit asked for under the caller's project: never theirs.
                candidates += [(o, w.p) for o in w.of("unit")]
            # With a bad body too: a foreign id must not answer 422 where a missing one
            # answers 404 (or the other way round).
            broken = op.has_body and op.name not in BODY_OBJECT and op.kind != "unit"
            if broken:
                url = url_for(w, op, missing_target)
                missing_broken = shape(call(w, op, me, url, None, missing_target, broken=True))
                calls += 1
                for obj, _ in candidates:
                    url = url_for(w, op, obj.id)
                    answer = call(w, op, me, url, obj, obj.id, broken=True)
                    calls += 1
                    if shape(answer) != missing_broken:
                        leaks.append(
                            (
                                op.name,
                                role,
                                f"{obj.name} (bad body)",
                                f"{missing_broken[0]} for a missing one",
                                answer.status_code,
                                answer.text[:160],
                            )
                        )
            for obj, project in candidates:
                response = call(w, op, me, url_for(w, op, obj.id, project), obj, obj.id)
                calls += 1
                tried[(op.name, role)] = tried.get((op.name, role), 0) + 1
                if op.kind == "unit" and project != w.p:
                    # Under its own project path: compare with a missing unit there.
                    missing_here = call(
                        w, op, me, url_for(w, op, str(uuid.uuid4()), project), None, ""
                    )
                    expected = shape(missing_here)
                else:
                    expected = shape(missing)
                if 200 <= response.status_code < 300 or shape(response) != expected:
                    leaks.append(
                        (
                            op.name,
                            role,
                            obj.name,
                            f"{expected[0]} for a missing one",
                            response.status_code,
                            response.text[:160],
                        )
                    )
    # Every role bound to a relation met at least one object outside it.
    untried = [
        (op.name, role)
        for op in operations(app)
        if op.kind is not None and op.name not in NO_OBJECT
        for role in TABLE[op.name].roles or ()
        if TABLE[op.name].relation(role) != "any"
        and (op.name, role) not in tried
        # A caller granted every project has no other project to be refused.
        and not (w.me[role].projects is None and op.kind == "project")
    ]
    print(f"\nleak matrix: {calls} calls with foreign or missing ids, {len(leaks)} leaks")
    assert leaks == [], "\n".join(map(str, leaks))
    assert untried == [], untried
    assert calls > 300


def test_no_list_or_view_shows_the_other_partys_rows(world: World) -> None:
    app = world.api.client.app
    assert isinstance(app, FastAPI)
    w = world
    leaks: list[tuple[str, str, dict[str, str], str]] = []
    lists = 0
    for op in operations(app):
        entry = TABLE[op.name]
        listing = op.method == "get" and (op.kind is None or op.path.endswith("/units"))
        if op.name in NO_OBJECT or not listing or entry.public:
            continue
        for role in entry.roles or ():
            me, relation = w.me[role], entry.relation(role)
            assert relation is not None
            foreign = [o for o in w.objects if o.markers and not w.admits(me, relation, o)]
            asks: list[dict[str, str]] = [{}]
            for obj in foreign:
                value = {
                    "client": {"client_id": obj.id},
                    "deal": {"deal_id": obj.id},
                    "consultant": {"consultant_id": obj.id, "payee_id": obj.id},
                    "partner": {"partner_id": obj.id, "payee_id": obj.id},
                    "project": {"project_id": obj.id},
                }.get(obj.kind, {})
                asks += [{k: v} for k, v in value.items() if k in op.query]
            for params in asks:
                url = url_for(w, op, w.p)
                asked = {**LIST_PARAMS.get(op.name, {}), **params}
                response = w.api.client.get(url, headers=me.headers, params=asked)
                lists += 1
                if response.status_code != 200:
                    assert response.status_code in (403, 404), (op.name, role, response.text)
                    continue
                text = response.text
                for obj in foreign:
                    shown = [m for m in obj.markers if m in text]
                    if shown:
                        leaks.append((op.name, role, params, f"{obj.name}: {shown}"))
    print(f"\nlist matrix: {lists} list calls, {len(leaks)} leaks")
    assert leaks == [], "\n".join(map(str, leaks))


def test_the_matrix_objects_are_there_for_those_they_concern(world: World) -> None:
    """The 404s above are not a guard refusing everything: related callers read them."""
    w = world
    c1, agent = w.me["consultant"], w.me["channel_agent"]
    mine = w.named("mine")
    for path in (f"/v1/clients/{mine.id}", f"/v1/clients/{mine.id}/history"):
        assert w.api.client.get(path, headers=c1.headers).status_code == 200
    deal = w.named("mine deal")
    assert w.api.client.get(f"/v1/deals/{deal.id}", headers=c1.headers).status_code == 200
    own_report = w.named("mine report")
    assert (
        w.api.client.get(f"/v1/reports/{own_report.id}", headers=agent.headers).status_code == 200
    )
    dispute = w.named("other partner's dispute")
    # The owner is a party to the dispute over their buyer; the supervisor of their team too.
    for me in (c1, w.me["supervisor"], w.me["manager"]):
        got = w.api.client.get(f"/v1/disputes/{dispute.id}", headers=me.headers)
        assert got.status_code == 200, (me.role, got.text)
    # The owner's buyer's reports include the competing channel's rejected one.
    late = w.named("other partner's rejected report")
    assert w.api.client.get(f"/v1/reports/{late.id}", headers=c1.headers).status_code == 200
    sup = w.me["supervisor"]
    colleague = w.named("colleague's")
    assert w.api.client.get(f"/v1/clients/{colleague.id}", headers=sup.headers).status_code == 200
    rows = w.api.client.get("/v1/clients", headers=sup.headers).json()["items"]
    assert {mine.id, colleague.id} <= {r["client_id"] for r in rows}


def test_may_answers_who_serves_a_buyer(world: World) -> None:
    """``may(app, caller, SERVERS, client)``: the owner, their supervisor, the managers."""
    w, app = world, world.api.container

    def caller(me: Me) -> Caller:
        return Caller(me.id, me.role, me.partner, me.projects or (), me.team)

    mine = app.clients.client(uuid.UUID(w.named("mine").id))
    others = app.clients.client(uuid.UUID(w.named("other team's").id))
    serving = {role for role, me in w.me.items() if may(app, caller(me), SERVERS, mine)}
    assert serving == {"consultant", "supervisor", "manager"}
    assert not any(may(app, caller(w.me[r]), SERVERS, others) for r in ("consultant", "supervisor"))
    assert may(app, caller(w.me["manager"]), SERVERS, others)
