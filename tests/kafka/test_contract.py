"""The public event contract: nothing personal leaves, everything validates, docs agree."""

from __future__ import annotations

import importlib
import json
import pkgutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, DomainEvent

import domain
from consumers import contract
from consumers.broker import KafkaPublisher
from consumers.relay import PostgresRelayState, Relay
from domain.client import Client
from tests.kafka.conftest import ContainerFactory, read_topic
from tests.kafka.scenario import DEAL_SECRETS, NAME, PHONES, busy_fortnight, deal_season
from tests.support import FakeClock
from yingke.bootstrap import conninfo
from yingke.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PERSONAL_TEXT = (NAME, "李四", "王五", "赵六", "钱七", "想要三居", "周末再来", "嫌贵", "同事")


@pytest.mark.postgres
def test_published_messages_carry_no_personal_data_and_all_fit_their_schemas(
    settings: Settings, containers: ContainerFactory
) -> None:
    container = containers(FakeClock())
    busy_fortnight(container, container.clock)  # type: ignore[arg-type]
    deal_season(container, container.clock, "proj-kafka")  # type: ignore[arg-type]
    relay = Relay(
        container.store,
        PostgresRelayState(conninfo(settings), settings.kafka_topic),
        KafkaPublisher(settings.kafka_bootstrap),
        settings.kafka_topic,
    )
    relay.catch_up()
    relay.state.release()
    records = read_topic(settings.kafka_bootstrap, settings.kafka_topic)
    stored = container.store.recorder.select_notifications(start=0, limit=10_000)
    hashes = [
        json.loads(n.state)["phone_hash"] for n in stored if n.topic.endswith("ClientRegistered")
    ]

    raw = b"".join(r.value + b"".join(v for _, v in r.headers) for r in records).decode()
    for secret in (*PHONES, *PERSONAL_TEXT, *DEAL_SECRETS, *hashes):
        assert secret not in raw
    for field in (
        *('"pii"', '"phone_hash"', '"key_digest"', '"source_detail"', '"comment"'),
        *('"contract_no"', '"filing_no"', '"certificate_no"', '"bank"'),
    ):
        assert field not in raw
    assert "138****0001" in raw  # the masked phone is what identifies a buyer downstream
    messages = [contract.decode(r.value) for r in records]
    assert {m["type"] for m in messages} >= {
        "Client.ClientRegistered",
        "Client.FollowUpLogged",
        "Client.ProfileUpdated",
        "Client.DisputeOpened",
        "MaskedReportPool.ReportFiled",
        "Principal.PrincipalRegistered",
    }
    deal_types = {t.name for t in contract.PUBLIC if t.aggregate in ("Deal", "Unit")}
    assert deal_types | {"CommissionPolicy.CommissionPolicyChanged"} <= {
        m["type"] for m in messages
    }
    assert [e for m in messages for e in contract.validate(m)] == []
    units = [m for m in messages if m["type"] == "Unit.UnitListed"]
    assert {m["data"]["area"] for m in units} == {"95.55"}  # a Decimal, as its exact string
    for message in messages:
        assert contract.to_message(contract.to_domain_event(message), message["position"]) == (
            message
        )


def concrete_aggregates() -> set[type[Aggregate]]:
    """Every aggregate class in domain/ that no other aggregate extends."""
    found: set[type[Aggregate]] = set()
    for module in pkgutil.iter_modules(domain.__path__):
        for obj in vars(importlib.import_module(f"domain.{module.name}")).values():
            if isinstance(obj, type) and issubclass(obj, Aggregate) and obj is not Aggregate:
                found.add(obj)
    return {a for a in found if not any(b is not a and issubclass(b, a) for b in found)}


def nested_events(aggregate: type[Any]) -> set[type[Any]]:
    prefix = aggregate.__name__ + "."
    return {
        cls
        for name in dir(aggregate)
        if isinstance(cls := getattr(aggregate, name), type)
        and issubclass(cls, DomainEvent)
        and cls.__qualname__.startswith(prefix)
        and name not in ("Event", "Created")
    }


def test_deal_unit_and_commission_events_are_public_and_withhold_what_identifies() -> None:
    assert not contract.DEFERRED_AGGREGATES and not contract.DEFERRED_TYPES
    for aggregate in ("Deal", "Unit", "CommissionPolicy"):
        events = nested_events(contract.AGGREGATES[aggregate])
        assert events and events <= set(contract.BY_CLASS), aggregate
    hidden = {t.name: set(t.hidden()) for t in contract.PUBLIC if t.aggregate == "Deal"}
    # each label withheld in clear (before ADR 0045) and sealed (since)
    assert hidden["Deal.ContractSigned"] == {"contract_no", "sealed"}
    assert hidden["Deal.ContractFiled"] == {"filing_no", "sealed"}
    assert hidden["Deal.CertificateIssued"] == {"certificate_no", "sealed"}
    assert hidden["Deal.BuyerRenamed"] == {"pii", "reason"}
    assert hidden["Deal.LoanApplied"] == {"bank", "sealed"}
    for name in ("Deal.DealCancelled", "Deal.UnitSwapped", "Deal.LoanRefused"):
        assert hidden[name] == {"reason", "sealed"}  # the text, in clear or sealed
    # codes stay: the cancellation's fault, the ledger's reason, the unit's release reason
    assert "fault" in contract.BY_NAME["Deal.DealCancelled"].published()
    assert "reason" in contract.BY_NAME["Deal.CommissionAccrued"].published()
    assert "reason" in contract.BY_NAME["Unit.UnitReleased"].published()


def test_a_unit_area_travels_as_an_exact_decimal_string() -> None:
    from decimal import Decimal

    from domain.unit import Unit

    listed: Any = Unit.UnitListed
    event = listed(
        originator_id=contract.EVENT_NAMESPACE,
        originator_version=1,
        timestamp=datetime(2026, 3, 3, tzinfo=UTC),
        originator_topic="domain.unit:Unit",
        actor={"id": "mgr", "role": "manager"},
        correlation_id="",
        project_id="p1",
        building="3栋",
        number="1201",
        rooms=3,
        area=Decimal("95.50"),
        floor=12,
        orientation="south",
        list_price=300_000_000,
    )
    message = contract.to_message(event, 9)
    assert message is not None and message["data"]["area"] == "95.50"
    assert contract.validate(message) == []
    assert contract.validate({**message, "data": {**message["data"], "area": 95.5}}) == [
        "$.data.area: must be string"
    ]
    back = contract.to_domain_event(json.loads(contract.encode(message)))
    assert back.area == Decimal("95.50") and isinstance(back.area, Decimal)


def test_every_event_in_the_domain_is_public_internal_or_deferred() -> None:
    events = set().union(*(nested_events(a) for a in concrete_aggregates()))
    unclassified = {
        e.__qualname__ for e in events if e not in contract.BY_CLASS and not contract.is_withheld(e)
    }
    assert unclassified == set(), "classify new events in consumers/contract.py"
    assert set(contract.BY_CLASS) <= events


def test_the_checked_in_schemas_are_the_contract() -> None:
    """docs/event-schemas.json is `python -m consumers.contract`; a change there is a
    contract change: bump the type's version unless the change only adds optional data."""
    checked_in = json.loads((ROOT / "docs" / "event-schemas.json").read_text())
    assert checked_in == json.loads(json.dumps(contract.all_schemas()))
    documented = (ROOT / "docs" / "events.md").read_text()
    missing = [t.name for t in contract.PUBLIC if f"`{t.name}`" not in documented]
    assert missing == []


def a_message() -> dict[str, Any]:
    released: Any = Client.ReleasedToPool
    event = released(
        originator_id=contract.EVENT_NAMESPACE,
        originator_version=7,
        timestamp=datetime(2026, 3, 3, tzinfo=UTC),
        actor={"id": "system", "role": "system"},
        correlation_id="deadline:x",
        reason="expired",
        previous_consultant_id="c1",
        previous_partner_id=None,
        policy_version=2,
    )
    message = contract.to_message(event, 42)
    assert message is not None
    return message


def test_a_valid_message_passes_and_a_tampered_one_is_refused() -> None:
    message = a_message()
    assert contract.validate(message) == []
    assert contract.validate({**message, "data": {**message["data"], "pii": "x"}}) == [
        "$.data.pii: is not in the contract"
    ]
    assert contract.validate({**message, "aggregate_version": "7"}) == [
        "$.aggregate_version: must be integer"
    ]
    assert contract.validate({**message, "schema_version": 9}) == [
        "schema_version: Client.ReleasedToPool is at v1"
    ]
    broken = {k: v for k, v in message.items() if k != "occurred_at"}
    assert contract.validate(broken) == ["$.occurred_at: is required"]


def test_a_message_becomes_the_event_a_view_reads_again() -> None:
    message = a_message()
    event = contract.to_domain_event(message)
    assert type(event).__qualname__ == "Client.ReleasedToPool"
    assert (event.reason, event.previous_consultant_id, event.policy_version) == (
        "expired",
        "c1",
        2,
    )
    assert event.originator_version == 7 and event.timestamp.isoformat() == message["occurred_at"]
    assert contract.to_message(event, 42) == message
