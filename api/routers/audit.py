"""The auditor's page (审计页面): a buyer's evidence in a browser, signed in with an API key.

Server-rendered (Jinja2, api/templates/audit), with its script and style served from the
package (no CDN). Signing in trades the API key, once, for a session cookie: HttpOnly,
SameSite=Strict, signed with the service secret and expiring after ``SESSION_SECONDS``;
it names the principal, not the key, and every request re-reads the principal, so a
revoked key ends its sessions too. Access is the ``evidence`` entry of the one
authorization table, and what a party sees is ``api.evidence_views``, as over the API.
These are pages, not API operations: they are left out of the OpenAPI document.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.authorization import SEES_WHOLE_BUNDLE, access
from api.deps import Caller, get_caller, get_container
from api.evidence_views import _redact as redact
from api.evidence_views import party_ids
from api.routers.evidence import bundle_for, pdf_response
from api.validation import Instant
from domain.errors import NotFound
from domain.services.clients import Loaded
from yingke.bootstrap import Container

router = APIRouter(prefix="/audit", include_in_schema=False)

COOKIE = "yingke_audit"
SESSION_SECONDS = 8 * 3600
ASSETS = "/audit/assets"
_HEADERS = {
    # Everything the page loads comes from here; nothing frames it.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}
_templates = Environment(
    loader=FileSystemLoader(str(files("api") / "templates")),
    autoescape=select_autoescape(["html"]),
)
# `tojson` prints an event's contents: Chinese as Chinese, not as \uXXXX escapes (it still
# escapes <, >, & and ' for HTML).
_templates.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}


# ---------------------------------------------------------------- sessions


def _sign(secret: bytes, payload: bytes) -> str:
    mac = hmac.new(secret, b"yingke-audit-session-v1\x00" + payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _admin_mark(app: Container) -> str:
    """Ties an admin session to the admin key in force: changing the key ends it."""
    return _sign(app.settings.secret, app.settings.admin_key.encode())[:16]


def issue_session(app: Container, caller: Caller, now: float) -> str:
    claims: dict[str, Any] = {"p": caller.id, "exp": int(now) + SESSION_SECONDS}
    if caller.role == "admin":
        claims["a"] = _admin_mark(app)
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{payload}.{_sign(app.settings.secret, payload.encode())}"


def session_caller(app: Container, cookie: str | None, now: float) -> Caller | None:
    if not cookie or cookie.count(".") != 1:
        return None
    payload, mac = cookie.split(".")
    if not secrets.compare_digest(mac, _sign(app.settings.secret, payload.encode())):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        principal_id, expires = str(claims["p"]), int(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    if now >= expires:
        return None
    if "a" in claims:
        if principal_id == "admin" and secrets.compare_digest(claims["a"], _admin_mark(app)):
            return Caller("admin", "admin")
        return None
    principal = app.principals.principal(principal_id)
    if principal is None or principal.revoked:
        return None
    return Caller.of(principal)


def _reader(request: Request) -> Caller | None:
    """The signed-in caller allowed to read evidence (the table's ``evidence`` roles)."""
    app = get_container(request)
    caller = session_caller(app, request.cookies.get(COOKIE), time.time())
    if caller is None:
        return None
    roles = access("evidence").roles or ()
    if caller.role not in roles:
        raise HTTPException(403, f"role {caller.role} may not read evidence")
    return caller


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(f"audit/{name}").render(assets=ASSETS, **context)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _to_sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/audit/sign-in?next={quote(target, safe='/')}", status_code=303)


def _safe_next(target: str | None) -> str:
    """Only a path on this page: never an open redirect to another site."""
    if target and target.startswith("/audit/") and not target.startswith("//"):
        return target
    return "/audit/"


# ------------------------------------------------------------------ routes


@router.get("/", response_class=HTMLResponse)
def audit_home(request: Request) -> Response:
    caller = _reader(request)
    if caller is None:
        return _to_sign_in(request)
    return _page("home.html", caller=caller)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(next: str | None = None) -> Response:
    return _page("sign_in.html", next=_safe_next(next), error=None)


@router.post("/sign-in")
async def sign_in(
    request: Request,
    key: Annotated[str, Form(max_length=512)],
    next: Annotated[str | None, Form(max_length=2048)] = None,
) -> Response:
    try:
        caller = await get_caller(request, f"Bearer {key}")
    except HTTPException:
        return _page("sign_in.html", 401, next=_safe_next(next), error="密钥无效或已吊销")
    app = get_container(request)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        issue_session(app, caller, time.time()),
        max_age=SESSION_SECONDS,
        path="/audit",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out")
def sign_out() -> Response:
    response = RedirectResponse("/audit/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/audit", httponly=True, samesite="strict")
    return response


@router.get("/clients/{client_id}", response_class=HTMLResponse)
def audit_client(
    request: Request,
    client_id: uuid.UUID,
    at: Annotated[Instant | None, Query()] = None,
) -> Response:
    caller = _reader(request)
    if caller is None:
        return _to_sign_in(request)
    app = get_container(request)
    # One read of the whole stream serves the bundle, the disputes and the owner shown.
    loaded = app.clients.whole(client_id)
    bundle = bundle_for(app, caller, client_id, None, loaded)
    sides = {"project_id": bundle["project_id"], "disputes": _disputes(loaded.client)}
    shown = _owner_at(app, caller, sides, loaded, at or app.clock())
    instants = [e["occurred_at"] for e in bundle["timeline"]]
    return _page(
        "client.html",
        caller=caller,
        bundle=bundle,
        shown=shown,
        instants=instants,
        pdf=f"/audit/clients/{client_id}/evidence.pdf",
        ownership=f"/audit/clients/{client_id}/ownership",
    )


@router.get("/clients/{client_id}/ownership")
def audit_ownership(
    request: Request, client_id: uuid.UUID, at: Annotated[Instant, Query()]
) -> Response:
    """The picker's answer: the owner at ``at`` and the rule that decided it."""
    caller = _reader(request)
    if caller is None:
        raise HTTPException(401, "sign in at /audit/sign-in")
    app = get_container(request)
    loaded = _loaded(app, client_id)
    bundle = {"project_id": loaded.client.project_id, "disputes": _disputes(loaded.client)}
    return JSONResponse(_owner_at(app, caller, bundle, loaded, at), headers=_HEADERS)


@router.get("/clients/{client_id}/evidence.pdf")
def audit_pdf(
    request: Request, client_id: uuid.UUID, at: Annotated[Instant | None, Query()] = None
) -> Response:
    caller = _reader(request)
    if caller is None:
        return _to_sign_in(request)
    return pdf_response(bundle_for(get_container(request), caller, client_id, at))


# ----------------------------------------------------------------- helpers


def _loaded(app: Container, client_id: uuid.UUID) -> Loaded:
    """The buyer folded once (not replayed whole, then folded again for the owner)."""
    loaded = app.clients.loaded(client_id)
    if loaded is None:
        raise NotFound("client not found")
    return loaded


def _disputes(client: Any) -> list[dict[str, Any]]:
    return [
        {"claimant_id": d.claimant_id, "owner_at_opening": d.owner_at_opening}
        for d in client.disputes.values()
    ]


def _owner_at(
    app: Container, caller: Caller, bundle: dict[str, Any], loaded: Loaded, at: datetime
) -> dict[str, Any]:
    """``ownership?at=`` (the same replay), with the policy it applied, as this caller may
    see it: a party sees its own side only."""
    full = caller.role in SEES_WHOLE_BUNDLE and caller.covers(bundle["project_id"])
    own = None if full else party_ids(bundle, caller)
    if not full and own is None:
        raise NotFound("client not found")
    found = app.clients.ownership_read(loaded.client.id, at, False, loaded)[1]
    owner = found["owner"] if own is None else redact(found["owner"], own)
    decided = found["decided_by"]
    version = found["policy_version"]
    rule = None
    if version is not None:
        policy = app.policies.policy_version(bundle["project_id"], version)
        rule = {
            "version": version,
            "since": policy.since.isoformat() if policy.since else None,
            "settings": policy.value.settings(),
        }
    return {
        "at": found["at"],
        "owner": owner,
        "decided_by": (
            {"version": decided["version"], "type": decided["type"], "at": decided["occurred_at"]}
            if decided
            else None
        ),
        "rule": rule,
    }
