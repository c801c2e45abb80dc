"""The one authorization table: who may call each operation, and on which objects.

Every route's endpoint function name maps to the roles allowed to call it and the relation
the route then checks between the caller and the object it touches:

- ``any``: no relation beyond the role (or, for ``PUBLIC`` operations, no caller at all);
- ``project``: the object's project (楼盘) is one the caller is granted;
- ``team``: reads are narrowed to the caller's own buyers, team or projects (``Scope``);
- ``own``: a consultant acts only on their own buyers or their own commission;
- ``partner``: a channel agent acts only for its own partner (渠道).

``enforce_roles`` (an app-level dependency) refuses a role that is not listed, with the same
403 the routers raised inline before; the relation checks stay in the routers' helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from api.deps import Caller, get_caller
from domain.vocabulary import ROLES, Role

Relation = Literal["any", "project", "team", "own", "partner"]


@dataclass(frozen=True)
class Access:
    roles: tuple[Role, ...] | None  # None: public, no Authorization header needed
    relation: Relation

    @property
    def public(self) -> bool:
        return self.roles is None


def _roles(*roles: Role) -> tuple[Role, ...]:
    return roles


PUBLIC = Access(None, "any")
EVERYONE = ROLES
ADMIN = _roles("admin")
OWNERS = _roles("manager", "admin")  # project set-up: policy, imports, rulings, departures
CARERS = _roles("consultant", "supervisor", "manager", "admin")
SELLERS = CARERS
REVIEWERS = _roles("supervisor", "manager", "admin")
STAFF = _roles("consultant", "supervisor", "manager", "auditor", "service", "admin")
MANAGEMENT = _roles("supervisor", "manager", "finance", "auditor", "service", "admin")
STEPPERS = (*SELLERS, "finance")
CASHIERS = _roles("finance", "manager", "admin")  # 回款 and 退房 move money
DEAL_READERS = _roles(
    "consultant", "supervisor", "manager", "finance", "auditor", "service", "admin"
)
BOARD_READERS = _roles("supervisor", "manager", "auditor", "service", "admin")

TABLE: dict[str, Access] = {
    # health, receipts, metrics: no caller
    "healthz": PUBLIC,
    "readyz": PUBLIC,
    "metrics": PUBLIC,
    "keys": PUBLIC,
    "verify": PUBLIC,
    "views_status": Access(EVERYONE, "any"),
    # principals
    "register_principal": Access(ADMIN, "any"),
    "get_principal": Access(ADMIN, "any"),
    "revoke_principal": Access(ADMIN, "any"),
    # policy and commission policy
    "set_policy": Access(_roles("admin", "manager"), "project"),
    "get_policy": Access(
        _roles(
            "admin", "manager", "supervisor", "consultant", "channel_agent", "auditor", "service"
        ),
        "project",
    ),
    "set_commission_policy": Access(_roles("admin", "manager"), "project"),
    "get_commission_policy": Access(
        _roles("admin", "manager", "supervisor", "finance", "auditor", "service"), "project"
    ),
    # reports (报备) and visits (到访)
    "file_report": Access(_roles("channel_agent", "manager", "service", "admin"), "project"),
    "get_report": Access(
        _roles(
            "channel_agent", "manager", "supervisor", "consultant", "auditor", "service", "admin"
        ),
        "partner",
    ),
    "register_visit": Access(
        _roles("consultant", "supervisor", "manager", "service", "admin"), "project"
    ),
    # clients
    # Capped and audited (api/access.py); auditors and admins read by id, not by phone.
    "lookup": Access(_roles("consultant", "supervisor", "manager", "service"), "project"),
    # The full number and notes: only the people serving the buyer (api/access.py).
    "contact": Access(_roles("consultant", "supervisor", "manager"), "own"),
    "follow_ups": Access(_roles("consultant", "supervisor", "manager"), "own"),
    "get_client": Access(STAFF, "project"),
    "history": Access(STAFF, "project"),
    "ownership": Access(STAFF, "project"),
    "erase": Access(ADMIN, "project"),
    "import_clients": Access(OWNERS, "project"),
    # aftercare (跟进, 转客, 流失, 认领)
    "log_follow_up": Access(CARERS, "project"),
    "change_grade": Access(CARERS, "project"),
    "update_profile": Access(CARERS, "project"),
    "transfer": Access(OWNERS, "project"),
    "request_loss": Access(CARERS, "project"),
    "approve_loss": Access(REVIEWERS, "project"),
    "reject_loss": Access(REVIEWERS, "project"),
    "claim": Access(CARERS, "project"),
    "approve_claim": Access(REVIEWERS, "project"),
    "reject_claim": Access(REVIEWERS, "project"),
    # disputes
    "open_dispute": Access(
        _roles("channel_agent", "consultant", "supervisor", "manager", "admin"), "partner"
    ),
    "get_dispute": Access(
        _roles(
            "channel_agent", "consultant", "supervisor", "manager", "auditor", "service", "admin"
        ),
        "partner",
    ),
    "rule": Access(OWNERS, "project"),
    "appeal": Access(EVERYONE, "own"),
    # consultants leaving (离职)
    "depart": Access(OWNERS, "any"),
    "departure": Access(_roles("manager", "supervisor", "auditor", "admin"), "any"),
    # units (房源)
    "import_units": Access(OWNERS, "project"),
    "list_units": Access(EVERYONE, "project"),
    "get_unit": Access(EVERYONE, "project"),
    # deals
    "open_deal": Access(SELLERS, "project"),
    "list_deals": Access(EVERYONE, "team"),
    "get_deal": Access(DEAL_READERS, "own"),
    "deposit": Access(STEPPERS, "own"),
    "subscription": Access(STEPPERS, "own"),
    "loan": Access(STEPPERS, "own"),
    "approve_loan": Access(STEPPERS, "own"),
    "refuse_loan": Access(STEPPERS, "own"),
    "contract": Access(STEPPERS, "own"),
    "filing": Access(STEPPERS, "own"),
    "payment": Access(CASHIERS, "own"),
    "delivery": Access(STEPPERS, "own"),
    "certificate": Access(STEPPERS, "own"),
    "cancel": Access(CASHIERS, "own"),
    "swap": Access(REVIEWERS, "own"),
    "rename": Access(REVIEWERS, "own"),
    # deal and commission views
    "deal_pipeline": Access(_roles("consultant", *MANAGEMENT), "team"),
    "payments": Access(MANAGEMENT, "team"),
    "commissions": Access(_roles("consultant", "channel_agent", *MANAGEMENT), "own"),
    "commission_entries": Access(_roles("consultant", "channel_agent", *MANAGEMENT), "own"),
    "signing_forecast": Access(_roles("consultant", *MANAGEMENT), "team"),
    # read views
    "list_clients": Access(_roles(*STAFF, "channel_agent"), "team"),
    "list_reports": Access(_roles(*STAFF, "channel_agent"), "team"),
    "list_tasks": Access(STAFF, "team"),
    "funnel": Access(_roles(*BOARD_READERS, "channel_agent"), "team"),
    "channels": Access(_roles(*BOARD_READERS, "channel_agent"), "team"),
    "consultants": Access(STAFF, "team"),
    "protection_board": Access(STAFF, "team"),
    "lost_reasons": Access(BOARD_READERS, "team"),
    "pool": Access(BOARD_READERS, "team"),
}


def access(operation: str) -> Access:
    """The table's entry; a route missing from it is a programming error, caught by tests."""
    return TABLE[operation]


def operation_of(request: Request) -> str | None:
    """The operation's key, or None for the undocumented pages (``/docs``, ``/redoc``)."""
    route = request.scope.get("route")
    if route is not None and not getattr(route, "include_in_schema", True):
        return None
    endpoint = getattr(route, "endpoint", None) or request.scope["endpoint"]
    name: str = endpoint.__name__
    return name


async def enforce_roles(request: Request) -> None:
    """Refuse a caller whose role the table does not list for this operation."""
    operation = operation_of(request)
    if operation is None:
        return
    entry = access(operation)
    if entry.roles is None:
        return
    # The endpoint's own ``CallerDep`` reuses this (kept on request.state), rather than
    # authenticating twice.
    caller: Caller = await get_caller(request, request.headers.get("authorization"))
    caller.require(*entry.roles)
