"""The public event contract: what Yingke publishes to Kafka, one versioned schema per type.

A message is not the stored event. It is an envelope (identity, order, who and why)
around ``data``: the event's fields minus everything personal. Fields the domain seals
(``pii``), the keyed phone hash, credential digests and free text typed by people
(which may hold anything, names included) never leave; a masked phone (前三后四) does.
docs/events.md describes every type; docs/event-schemas.json holds the JSON Schemas
(draft 2020-12) of the messages' pydantic models, as ``python -m consumers.contract``
prints them (regenerate with ``python -m consumers.contract > docs/event-schemas.json``),
for consumers in any language. ``validate`` checks a message here against the model.

Internal streams (idempotency records, report and dispute locators, claim quotas) are
write-side bookkeeping, not business facts: the relay skips them. Deals, units and
commission policies are public from version 1; contract, filing and certificate numbers
(they identify a buyer's property) are withheld like free text.
"""

from __future__ import annotations

import functools
import json
import sys
import types
import typing
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)
from pydantic_core import ErrorDetails

from domain.allowance import Allowance
from domain.client import Client
from domain.commission import CommissionPolicy
from domain.deal import Deal
from domain.departure import Departure
from domain.idempotency import IdempotencyRecord
from domain.locator import DisputeLocator, ReportLocator
from domain.masked_pool import MaskedReportPool
from domain.policy import ProjectPolicy
from domain.principal import Principal
from domain.quota import ClaimQuota
from domain.unit import Unit

# event_id = uuid5(EVENT_NAMESPACE, f"{aggregate_id}:{aggregate_version}"): any consumer
# can recompute it, and a re-sent event keeps its identity.
EVENT_NAMESPACE = uuid.UUID("0b9f6f52-3f0e-5b0a-9a43-7d1f7f7c2a10")
ENVELOPE = (
    "event_id",
    "type",
    "schema_version",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "position",
    "occurred_at",
    "actor",
    "correlation_id",
    "data",
)
# Never published, whatever the type: sealed personal data, the keyed phone hash (a
# stable pseudonym that would let the topic be joined across systems), key digests.
ALWAYS_WITHHELD = frozenset({"pii", "sealed", "phone_hash", "key_digest"})
_STATE = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})
_TRACE = frozenset({"actor", "correlation_id"})
# The demand profile's structured answers; the free-text ``source_detail`` stays home.
PROFILE_KEYS = (
    "budget_min",
    "budget_max",
    "districts",
    "layouts",
    "area_min",
    "area_max",
    "floor_preference",
    "purpose",
    "focus",
    "family_structure",
    "age_band",
)


_PEOPLE = ("display_name", "wecom_user_id", "notify_webhook")


class ContractError(ValueError):
    """A message that does not match the contract, or an event it does not cover."""


@dataclass(frozen=True)
class EventType:
    cls: type[Any]
    version: int
    description: str
    withheld: tuple[str, ...] = ()  # free-text fields of this type, besides ALWAYS_WITHHELD

    @property
    def name(self) -> str:
        return str(self.cls.__qualname__)

    @property
    def aggregate(self) -> str:
        return self.name.split(".")[0]

    def hints(self) -> dict[str, Any]:
        return _hints(self)

    def published(self) -> dict[str, Any]:
        return _split(self)[0]

    def hidden(self) -> dict[str, Any]:
        return _split(self)[1]


@functools.cache
def _hints(event_type: EventType) -> dict[str, Any]:
    hints = typing.get_type_hints(event_type.cls)
    return {f.name: hints[f.name] for f in fields(event_type.cls)}


@functools.cache
def _split(event_type: EventType) -> tuple[dict[str, Any], dict[str, Any]]:
    """(published fields, withheld fields) of a type, with their type hints."""
    withheld = ALWAYS_WITHHELD | set(event_type.withheld)
    hints = _hints(event_type)
    published = {k: v for k, v in hints.items() if k not in withheld | _STATE | _TRACE}
    return published, {k: v for k, v in hints.items() if k in withheld}


def _t(cls: type[Any], description: str, *withheld: str, version: int = 1) -> EventType:
    return EventType(cls, version, description, withheld)


PUBLIC: tuple[EventType, ...] = (
    _t(Client.ClientRegistered, "A buyer was first seen at a project (report or visit)."),
    _t(Client.ReportFiled, "A channel filed a full-number report (报备) for this buyer."),
    _t(Client.ReportAccepted, "The report holds the buyer until valid_until."),
    _t(Client.ReportRejected, "The report was refused; reason is a code."),
    _t(Client.ReportExpired, "The report's validity ran out before any visit."),
    _t(Client.ReportConfirmed, "A visit confirmed the report: it won the attribution."),
    _t(Client.ReportClosed, "A visit closed the report without it winning; reason is a code."),
    _t(Client.MaskedReportMatched, "A masked report from a pool was matched to this buyer."),
    _t(
        Client.MaskedReportPassedOver,
        "A masked report on the buyer's pattern lost at this buyer's visit; it stays open "
        "in its pool for other buyers but never counts for this one again.",
    ),
    _t(Client.ClientVisited, "The buyer visited the sales office (到访)."),
    _t(Client.OwnershipAwarded, "A visit decided who owns the buyer (判客)."),
    _t(Client.ScheduleUpdated, "When the next follow-up is due and when inactivity releases."),
    _t(Client.FollowUpLogged, "The owner followed up (跟进); the summary stays home."),
    _t(Client.GradeChanged, "The buyer's grade (A/B/C) changed.", "reason"),
    _t(Client.ProfileUpdated, "The structured demand profile changed (free text withheld)."),
    _t(Client.ProtectionExtended, "Contact pushed the protection period (保护期) out."),
    _t(Client.ProtectionExpired, "The protection period ran out."),
    _t(Client.ReleasedToPool, "The buyer went to the public pool (公海池); reason is a code."),
    _t(Client.OwnershipTransferred, "Ownership moved: transfer, departure, ruling.", "reason"),
    _t(Client.LossRequested, "The owner asked to mark the buyer lost (战败); reason is a code."),
    _t(Client.LossApproved, "A supervisor approved the loss.", "comment"),
    _t(Client.LossRejected, "A supervisor rejected the loss.", "comment"),
    _t(Client.ClaimRequested, "A consultant asked to claim the buyer from the pool (捞客)."),
    _t(Client.ClaimRejected, "The pool claim was refused.", "reason"),
    _t(Client.ClaimedFromPool, "A consultant took the buyer from the pool."),
    _t(Client.DisputeOpened, "An attribution dispute (申诉) was opened.", "reason"),
    _t(Client.DisputeRuled, "The dispute was ruled upheld or dismissed.", "reason"),
    _t(Client.DisputeAppealed, "The ruling was appealed.", "reason"),
    _t(Client.ContactDisclosed, "A person serving the buyer was shown their full contact."),
    _t(Client.PersonalDataErased, "The buyer's personal data was erased (crypto-shredding)."),
    _t(
        Client.BuyerReturned,
        "An erased buyer came back (a report, a visit, the register): a buyer again, "
        "with the masked phone; what came before the return stays erased.",
    ),
    _t(
        Client.ClientMigrated,
        "The buyer came from the office's register (客户迁移); dates are the sheet's own.",
        "fingerprint",
    ),
    _t(Client.FollowUpMigrated, "The register's last follow-up, at the sheet's date."),
    _t(
        Client.OwnershipMigrated,
        "The register's owner since the sheet's date; protection from the import.",
    ),
    _t(
        Client.FollowUpEscalated,
        "A follow-up is overdue past its grade's escalate_after: the owner's supervisor "
        "is asked to step in.",
    ),
    _t(
        Client.ClientWentDormant,
        "No follow-up or visit for dormant_after: 待激活, a wake-up task for the owner.",
    ),
    _t(Client.DealMilestoneRecorded, "A step of one of the buyer's deals (成交); amount in fen."),
    _t(MaskedReportPool.PoolOpened, "The first masked report (隐号报备) for a 前三后四 pattern."),
    _t(MaskedReportPool.ReportFiled, "A channel filed a masked report into the pattern's pool."),
    _t(MaskedReportPool.ReportAccepted, "The masked report is valid until valid_until."),
    _t(MaskedReportPool.ReportRejected, "The masked report was refused; reason is a code."),
    _t(MaskedReportPool.ReportExpired, "The masked report's validity ran out."),
    _t(MaskedReportPool.MaskedReportConsumed, "A visit consumed the masked report for a buyer."),
    _t(ProjectPolicy.Opened, "A project's policy stream was opened."),
    _t(ProjectPolicy.PolicyChanged, "A new version of the project's attribution policy."),
    # A person's name, WeCom id and webhook URL (it carries a key) stay home.
    _t(
        Principal.PrincipalRegistered,
        "A principal (staff, channel agent, service) was created.",
        *_PEOPLE,
    ),
    _t(Principal.ProfileChanged, "A principal's name or notification addresses changed.", *_PEOPLE),
    _t(Principal.PrincipalRevoked, "A principal's key was revoked.", "reason"),
    _t(Departure.DepartureStarted, "A consultant left (离职); their buyers are being moved."),
    _t(Departure.ClientMoved, "One of the leaver's buyers was moved (or skipped)."),
    _t(Departure.DepartureCompleted, "Every buyer of the leaver was moved."),
    # Deals (成交), from schema version 1. Money is integer fen; stage, fault, kind,
    # method and plan are codes. Contract, filing and certificate numbers identify a
    # buyer's property (and through the registry, the buyer): withheld, like the
    # lender's name and every free-text reason. Commission ``reason`` is a code.
    _t(Deal.DealOpened, "A deal (成交) was opened on a unit, attributed as the buyer stood."),
    _t(Deal.DepositPaid, "The deposit (定金) was paid; the signing deadline runs."),
    _t(Deal.SubscriptionSigned, "The subscription (认购) was signed at a price."),
    _t(Deal.LoanApplied, "A mortgage (按揭) was applied for; the lender stays home.", "bank"),
    _t(Deal.LoanApproved, "The bank approved the loan."),
    _t(Deal.LoanRefused, "The bank refused the loan.", "reason"),
    _t(Deal.ContractSigned, "The sales contract (签约) was signed.", "contract_no"),
    _t(Deal.ContractFiled, "The contract was filed (备案) with the authority.", "filing_no"),
    _t(Deal.PaymentReceived, "A payment (回款) came in; running_total includes the deposit."),
    _t(Deal.UnitDelivered, "The unit was handed over (交房)."),
    _t(Deal.CertificateIssued, "The property certificate (产证) was issued.", "certificate_no"),
    _t(Deal.DealCancelled, "The deal was cancelled (退房); fault is a code.", "reason"),
    _t(Deal.UnitSwapped, "The buyer moved to another unit (换房).", "reason"),
    _t(
        Deal.BuyerRenamed,
        "The buyer on the deal was renamed (更名); nothing else leaves.",
        "reason",
    ),
    _t(
        Deal.NegotiationEscalated,
        "No contract for negotiation_escalation after the deposit: the manager steps in.",
    ),
    _t(Deal.DealReattributed, "A dispute ruling moved the deal's attribution."),
    _t(Deal.CommissionAccrued, "A commission (佣金) entry was booked; reason is a code."),
    _t(Deal.CommissionReversed, "A commission entry was reversed whole; reason is a code."),
    _t(Unit.UnitListed, "A unit (房源) was listed; area in m² as a decimal string."),
    _t(Unit.UnitRevised, "An available unit's details or list price changed."),
    _t(Unit.UnitHeld, "A deal holds the unit."),
    _t(Unit.UnitSubscribed, "The deal holding the unit was subscribed."),
    _t(Unit.UnitContracted, "The deal holding the unit signed its contract."),
    _t(Unit.UnitSold, "The contract was filed: the unit is sold."),
    _t(Unit.UnitReleased, "The unit is available again; reason is cancelled or swapped."),
    _t(CommissionPolicy.Opened, "A project's commission policy stream was opened."),
    _t(CommissionPolicy.CommissionPolicyChanged, "A new version of the commission rules."),
    _t(
        Allowance.AllowanceOpened,
        "A principal's lookup, disclosure or import allowance window opened.",
    ),
    _t(Allowance.LookupRecorded, "A phone lookup (查客) by a principal; found or not."),
    _t(Allowance.LookupLimited, "A phone lookup refused (429): the hour's allowance was used."),
    _t(Allowance.ImportChecked, "A client-register import (or dry run) checked rows' phones."),
    _t(Allowance.ImportClash, "An import named a buyer already at the project; counted."),
    _t(Allowance.ImportLimited, "An import refused (429): the day's clash allowance is spent."),
    _t(Allowance.DisclosureCounted, "A contact disclosure counted against the day's cap."),
)
INTERNAL: tuple[type[Any], ...] = (
    IdempotencyRecord.ResponseRecorded,
    ReportLocator.ReportLocated,
    DisputeLocator.DisputeLocated,
    ClaimQuota.QuotaOpened,
    ClaimQuota.ClaimCounted,
    ClaimQuota.ClaimUncounted,
)
# Types whose public schema is not decided yet stay home, named here (not imported) so
# the contract and work in progress can move independently. Nothing is deferred now:
# deals, units and commission policies are published from version 1.
DEFERRED_AGGREGATES: frozenset[str] = frozenset()
DEFERRED_TYPES: frozenset[str] = frozenset()
AGGREGATES: dict[str, type[Aggregate]] = {
    "Client": Client,
    "MaskedReportPool": MaskedReportPool,
    "ProjectPolicy": ProjectPolicy,
    "Principal": Principal,
    "Departure": Departure,
    "Deal": Deal,
    "Unit": Unit,
    "CommissionPolicy": CommissionPolicy,
    "Allowance": Allowance,
}
BY_CLASS: dict[type[Any], EventType] = {t.cls: t for t in PUBLIC}
BY_NAME: dict[str, EventType] = {t.name: t for t in PUBLIC}


def is_withheld(cls: type[Any]) -> bool:
    """Internal bookkeeping, or deferred: deliberately not published."""
    name = str(cls.__qualname__)
    return cls in INTERNAL or name in DEFERRED_TYPES or name.split(".")[0] in DEFERRED_AGGREGATES


def withheld_classes() -> list[type[Any]]:
    """Every event class of domain/ that is not published (internal or deferred)."""
    import importlib
    import pkgutil

    import domain

    found: list[type[Any]] = []
    for module in pkgutil.iter_modules(domain.__path__):
        for obj in vars(importlib.import_module(f"domain.{module.name}")).values():
            if isinstance(obj, type) and issubclass(obj, Aggregate) and obj is not Aggregate:
                for name in dir(obj):
                    cls = getattr(obj, name)
                    if (
                        isinstance(cls, type)
                        and issubclass(cls, Aggregate.Event)
                        and cls.__qualname__.startswith(obj.__name__ + ".")
                        and is_withheld(cls)
                    ):
                        found.append(cls)
    return found


# ---------------------------------------------------------------- schemas
#
# One pydantic model per public type describes its message on the wire (ADR 0025): the
# JSON Schemas are the models' ``model_json_schema()``, and ``validate`` is the model's
# strict JSON validation. Wire types, not domain types: a Decimal travels as its exact
# decimal string ("95.50"), never as a binary float; times carry their offset.

_DECIMAL_TEXT = Annotated[str, Field(pattern=r"^-?\d+(\.\d+)?$")]
_PHONE_MASKED = Annotated[str, Field(pattern=r"^1[3-9]\d\*{4}\d{4}$")]
_STRICT = ConfigDict(strict=True, extra="forbid")


class Actor(BaseModel):
    model_config = _STRICT
    id: str
    role: str


class OwnerAtOpening(BaseModel):
    """Who owned the buyer when the deal was opened."""

    model_config = _STRICT
    consultant_id: str | None
    partner_id: str | None
    report_id: str | None


class Profile(BaseModel):
    """The demand profile's structured answers (PROFILE_KEYS); each may be absent."""

    model_config = _STRICT
    budget_min: int | None = None
    budget_max: int | None = None
    districts: list[str] = Field(default_factory=list)
    layouts: list[int] = Field(default_factory=list)
    area_min: float | None = None
    area_max: float | None = None
    floor_preference: str | None = None
    purpose: str | None = None
    focus: list[str] = Field(default_factory=list)
    family_structure: str | None = None
    age_band: str | None = None


# Fields whose name says more than their type hint.
_FIELD_TYPES: dict[str, Any] = {
    "owner_at_opening": OwnerAtOpening,
    "profile": Profile,
    "phone_masked": _PHONE_MASKED,
    "settings": Annotated[
        dict[str, Any], Field(description="the policy settings, as in the policy API")
    ],
}
# Where one field name means different things in different types.
_TYPE_FIELD_TYPES: dict[tuple[str, str], Any] = {
    ("CommissionPolicy.CommissionPolicyChanged", "settings"): Annotated[
        dict[str, Any],
        Field(description="the commission rules, as in the commission policy API"),
    ],
}


def _wire(hint: Any) -> Any:
    """The type a field has in a message, for its type hint in the domain event."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _wire(inner) | None
    if hint is datetime:
        return AwareDatetime
    if hint is Decimal:
        return _DECIMAL_TEXT
    if typing.get_origin(hint) is list:
        return list[_wire(args[0])]  # type: ignore[misc]
    if hint in (bool, int, str, uuid.UUID) or typing.get_origin(hint) is dict:
        return hint
    raise TypeError(f"no public schema for {hint!r}")


def _const(value: str | int) -> Any:
    return Literal[value]


@functools.cache
def model(event_type: EventType) -> type[BaseModel]:
    """The pydantic model of one public event type's message at its current version."""
    data_fields: dict[str, Any] = {
        name: (
            _TYPE_FIELD_TYPES.get((event_type.name, name)) or _FIELD_TYPES.get(name) or _wire(hint),
            ...,
        )
        for name, hint in event_type.published().items()
    }
    data = create_model(  # type: ignore[call-overload]
        f"{event_type.name.replace('.', '')}Data", __config__=_STRICT, **data_fields
    )
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"{event_type.name.replace('.', '')}V{event_type.version}",
        __config__=ConfigDict(
            strict=True,
            extra="forbid",
            title=f"{event_type.name} v{event_type.version}",
            json_schema_extra={"description": event_type.description},
        ),
        event_id=(uuid.UUID, ...),
        type=(_const(event_type.name), ...),
        schema_version=(_const(event_type.version), ...),
        aggregate_type=(_const(event_type.aggregate), ...),
        aggregate_id=(uuid.UUID, ...),
        aggregate_version=(int, Field(ge=1)),
        position=(int, Field(ge=1)),
        occurred_at=(AwareDatetime, ...),
        actor=(Actor | None, ...),
        correlation_id=(str | None, ...),
        data=(data, ...),
    )


def schema(event_type: EventType) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one public event type at its current version."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:yingke:event:{event_type.name}:v{event_type.version}",
        **model(event_type).model_json_schema(),
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    return {t.name: schema(t) for t in PUBLIC}


# --------------------------------------------------------------- messages


def event_id(aggregate_id: uuid.UUID | str, version: int) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, f"{aggregate_id}:{version}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _scrub(name: str, value: Any) -> Any:
    if name == "profile" and isinstance(value, dict):
        return {k: value[k] for k in PROFILE_KEYS if k in value}
    return value


def to_message(event: Any, position: int) -> dict[str, Any] | None:
    """The public message for a stored event, or None for an internal one."""
    event_type = BY_CLASS.get(type(event))
    if event_type is None:
        if is_withheld(type(event)):
            return None
        raise ContractError(
            f"{type(event).__qualname__} is neither public nor withheld: classify it in "
            "consumers/contract.py (the relay publishes nothing until it is)"
        )
    # As stored: an event recorded before a field existed publishes it as null, not as
    # the field's default today.
    state = vars(event)
    data = {name: _jsonable(_scrub(name, state.get(name))) for name in event_type.published()}
    actor = state.get("actor")
    return {
        "event_id": str(event_id(event.originator_id, event.originator_version)),
        "type": event_type.name,
        "schema_version": event_type.version,
        "aggregate_type": event_type.aggregate,
        "aggregate_id": str(event.originator_id),
        "aggregate_version": event.originator_version,
        "position": position,
        "occurred_at": event.timestamp.isoformat(),
        "actor": {"id": actor["id"], "role": actor["role"]} if actor else None,
        "correlation_id": state.get("correlation_id"),
        "data": data,
    }


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def decode(value: bytes) -> dict[str, Any]:
    try:
        message = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(f"not a JSON message: {exc}") from exc
    if not isinstance(message, dict):
        raise ContractError("a message is a JSON object")
    return message


def headers(message: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [
        ("event_id", message["event_id"].encode()),
        ("type", message["type"].encode()),
        ("schema_version", str(message["schema_version"]).encode()),
        ("position", str(message["position"]).encode()),
        ("correlation_id", (message["correlation_id"] or "").encode()),
    ]


def _restore(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(inner) == 1:
        hint = inner[0]
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is uuid.UUID:
        return uuid.UUID(value)
    if hint is Decimal:
        return Decimal(value)
    return value


def _blank(hint: Any) -> Any:
    if hint is str:
        return ""
    return {} if typing.get_origin(hint) is dict else None


def to_domain_event(message: dict[str, Any]) -> Any:
    """The domain event a view can apply, rebuilt from a public message.

    Views never read withheld fields: they come back empty ("" for sealed text), so a
    view fed from Kafka computes exactly what it computes from the event store.
    """
    event_type = BY_NAME.get(message.get("type", ""))
    if event_type is None:
        raise ContractError(f"unknown event type {message.get('type')!r}")
    if message.get("schema_version") != event_type.version:
        raise ContractError(
            f"{event_type.name} v{message.get('schema_version')} is not v{event_type.version}"
        )
    state: dict[str, Any] = {
        name: _restore(hint, message["data"].get(name))
        for name, hint in event_type.published().items()
    }
    state.update({name: _blank(hint) for name, hint in event_type.hidden().items()})
    state.update(
        originator_id=uuid.UUID(message["aggregate_id"]),
        originator_version=message["aggregate_version"],
        timestamp=datetime.fromisoformat(message["occurred_at"]),
        actor=message["actor"] or {},
        correlation_id=message["correlation_id"] or "",
    )
    if "originator_topic" in event_type.hints():
        state["originator_topic"] = get_topic(AGGREGATES[event_type.aggregate])
    return event_type.cls(**state)


# ------------------------------------------------------------- validation


def validate(message: dict[str, Any]) -> list[str]:
    """Every way ``message`` breaks the schema of its type and version; [] when it fits."""
    event_type = BY_NAME.get(str(message.get("type")))
    if event_type is None:
        return [f"type: unknown event type {message.get('type')!r}"]
    if message.get("schema_version") != event_type.version:
        return [f"schema_version: {event_type.name} is at v{event_type.version}"]
    try:
        # JSON mode, as a consumer in another language sees it: strings for uuids and
        # times, and no coercion of "7" into 7.
        model(event_type).model_validate_json(encode(message))
    except ValidationError as exc:
        return [_problem(error) for error in exc.errors()]
    return []


def check(message: dict[str, Any]) -> None:
    errors = validate(message)
    if errors:
        raise ContractError("; ".join(errors))


_JSON_TYPE_ERRORS = {
    "string_type": "string",
    "int_type": "integer",
    "int_from_float": "integer",
    "float_type": "number",
    "bool_type": "boolean",
    "list_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
}


def _problem(error: ErrorDetails) -> str:
    """One pydantic error in the contract's words: ``$.data.area: must be string``."""
    path = "$" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
    )
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "missing":
        return f"{path}: is required"
    if kind == "extra_forbidden":
        return f"{path}: is not in the contract"
    if kind in _JSON_TYPE_ERRORS:
        return f"{path}: must be {_JSON_TYPE_ERRORS[kind]}"
    if kind == "literal_error":
        return f"{path}: must be {context.get('expected')}"
    if kind.startswith("uuid"):
        return f"{path}: not a valid uuid"
    if kind.startswith(("datetime", "timezone")):
        return f"{path}: not a valid date-time"
    if kind == "string_pattern_mismatch":
        return f"{path}: does not match {context.get('pattern')}"
    if kind == "greater_than_equal":
        return f"{path}: must be at least {context.get('ge')}"
    return f"{path}: {error['msg']}"


def main() -> None:
    """Print every schema as one JSON document (docs/event-schemas.json is this output)."""
    json.dump(all_schemas(), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
