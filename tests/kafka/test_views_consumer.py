"""The views consumer builds the same tables as the direct follower, whatever crashes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from consumers.broker import KafkaPublisher, Stopper, group_consumer, run_group
from consumers.relay import PostgresRelayState, Relay
from consumers.views import ViewsConsumer, check_single_partition, select_views
from domain.errors import NotFound
from domain.values import Actor
from projections.channel_performance import TABLE as CHANNEL_TABLE
from projections.runtime import Follower, PostgresViewDB, Rows, Table, View, ViewDB
from tests.kafka.conftest import ContainerFactory, fresh_database
from tests.kafka.scenario import busy_fortnight, deal_season
from tests.kafka.test_relay import DiesAfterSending, public_positions
from tests.support import FakeClock, ctx, register_consultant, register_visit
from yingke.bootstrap import Container, all_views, conninfo
from yingke.settings import Settings, postgres_params

pytestmark = pytest.mark.postgres


@pytest.fixture
def consumer_db(containers: ContainerFactory) -> Iterator[ViewDB]:
    """A second database for the consumer's tables, beside the directly built ones."""
    with fresh_database("yingke_kafka_views") as url:
        pg = postgres_params(url)
        db = PostgresViewDB(
            f"host={pg['host']} port={pg['port']} dbname={pg['dbname']} user=postgres"
        )
        container = containers()
        Follower(container.store, db, all_views()).migrate()
        yield db
        db.close()


def snapshot(db: ViewDB) -> dict[str, list[tuple[Any, ...]]]:
    tables: list[Table] = [t for v in all_views() for t in v.tables]
    return {
        t.name: [
            tuple(r)
            for r in db.query(
                f"SELECT {', '.join(t.columns)} FROM {t.name} ORDER BY {', '.join(t.key)}"
            )
        ]
        for t in tables
    }


def published_with_a_relay_crash(settings: Settings, container: Container) -> int:
    """Relay the log, dying once between send and position write; the last position."""
    relay = Relay(
        container.store,
        PostgresRelayState(conninfo(settings), settings.kafka_topic),
        KafkaPublisher(settings.kafka_bootstrap),
        settings.kafka_topic,
        batch_size=25,
    )
    dying = DiesAfterSending(relay.state)  # type: ignore[arg-type]
    relay.state = dying
    relay.run_once()
    dying.armed = True
    with pytest.raises(SystemExit):
        relay.run_once()
    dying.release()
    relay.state = PostgresRelayState(conninfo(settings), settings.kafka_topic)
    relay.catch_up()
    relay.state.release()
    return public_positions(container)[-1]


def consume(
    settings: Settings, views: list[View], db: ViewDB, group: str, last: int, batch: int = 1000
) -> ViewsConsumer:
    consumer = group_consumer(settings.kafka_bootstrap, settings.kafka_topic, group, fast_join=True)
    views_consumer = ViewsConsumer(db, views)
    try:
        check_single_partition(consumer, settings.kafka_topic)
        run_group(
            consumer,
            views_consumer.apply,
            Stopper(),
            max_records=batch,
            until=lambda: min(views_consumer.positions().values()) >= last,
        )
    finally:
        consumer.close(autocommit=False)
    return views_consumer


def test_the_views_consumer_absorbs_a_relay_resend_and_equals_the_direct_tables(
    settings: Settings, containers: ContainerFactory, consumer_db: ViewDB
) -> None:
    container = containers(FakeClock())
    busy_fortnight(container, container.clock, project="proj-equal")  # type: ignore[arg-type]
    deals = deal_season(container, container.clock, "proj-equal")  # type: ignore[arg-type]
    last = published_with_a_relay_crash(settings, container)

    built = consume(settings, all_views(), consumer_db, f"views-{uuid.uuid4().hex[:6]}", last)

    assert built.duplicates >= 1  # the re-sent batch changed nothing
    container.follower.catch_up()
    direct, from_kafka = snapshot(container.views), snapshot(consumer_db)
    assert from_kafka == direct
    assert sum(len(rows) for rows in direct.values()) > 50
    # the deal views are among them, and not empty
    pipeline = {row[0]: row for row in from_kafka["deal_pipeline"]}
    assert {str(d) for d in deals.values()} <= set(pipeline)
    for table in ("units", "payment_collection", "commission_ledger", "commission_entries"):
        assert from_kafka[table], table
    deals_at = list(CHANNEL_TABLE.columns).index("deals")
    assert sum(row[deals_at] for row in from_kafka["channel_performance"]) >= 2


def test_the_views_consumer_builds_every_view() -> None:
    """No view is left to the direct follower: every event a view reads is published."""
    assert [v.name for v in select_views(all_views(), None)] == [v.name for v in all_views()]


class CrashingView:
    """Wraps a view; the shared countdown kills the consumer in the middle of a batch."""

    def __init__(self, view: View, countdown: list[int]) -> None:
        self.view = view
        self.name = view.name
        self.tables = view.tables
        self.countdown = countdown

    def handles(self, event: Any) -> bool:
        return self.view.handles(event)

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        self.view.apply(rows, event, position)
        self.countdown[0] -= 1
        if self.countdown[0] == 0:
            raise RuntimeError("killed mid-batch")


def test_a_views_consumer_killed_mid_batch_leaves_the_views_exact(
    settings: Settings, containers: ContainerFactory, consumer_db: ViewDB
) -> None:
    container = containers(FakeClock())
    busy_fortnight(container, container.clock, project="proj-crash")  # type: ignore[arg-type]
    deal_season(container, container.clock, "proj-crash")  # type: ignore[arg-type]
    last = published_with_a_relay_crash(settings, container)
    group = f"views-{uuid.uuid4().hex[:6]}"
    countdown = [150]  # several small batches commit first, then one dies half applied
    crashing: list[View] = [CrashingView(v, countdown) for v in all_views()]

    with pytest.raises(RuntimeError, match="killed mid-batch"):
        consume(settings, crashing, consumer_db, group, last, batch=10)
    assert 0 < min(ViewsConsumer(consumer_db, all_views()).positions().values()) < last

    consume(settings, all_views(), consumer_db, group, last, batch=10)  # the restart

    container.follower.catch_up()
    assert snapshot(consumer_db) == snapshot(container.views)


def test_the_views_consumer_fills_the_disclosure_and_lookup_audits_as_the_follower_does(
    settings: Settings, containers: ContainerFactory, consumer_db: ViewDB
) -> None:
    """contact_disclosures and lookup_audit from Kafka equal the directly built ones:
    disclosures by the owner and a manager, lookups found and not found over two hours,
    a grade with a sealed reason, and an erased buyer (whose masked phone leaves every
    view) along the way."""
    container = containers(FakeClock())
    clock: FakeClock = container.clock  # type: ignore[assignment]
    project = "proj-audit"
    owner = Actor(register_consultant(container, project), "consultant")
    manager = Actor(register_consultant(container, project, role="manager"), "manager")
    phones = ("13811112001", "13811112002")
    buyers = [
        uuid.UUID(register_visit(container, project, phone, owner.id)["client_id"])
        for phone in phones
    ]
    for who in (owner, manager, owner):
        for buyer in buyers:
            container.contact.disclose_contact(ctx(who), buyer, cap=100)
            clock.advance(minutes=7)
    container.followups.change_grade(ctx(owner), buyers[0], "A", "欧阳娜娜 18611112222")
    for phone in (*phones, "13999990000"):
        for who in (owner, manager):
            with contextlib.suppress(NotFound):
                container.contact.look_up(ctx(who), project, phone, cap=60)
        clock.advance(minutes=50)
    container.clients.erase_personal_data(ctx(), buyers[1])
    with pytest.raises(NotFound):
        container.contact.look_up(ctx(owner), project, phones[1], cap=60)
    last = published_with_a_relay_crash(settings, container)

    consume(settings, all_views(), consumer_db, f"views-{uuid.uuid4().hex[:6]}", last)

    container.follower.catch_up()
    direct, from_kafka = snapshot(container.views), snapshot(consumer_db)
    assert len(from_kafka["contact_disclosures"]) == 6
    assert len(from_kafka["lookup_audit"]) == 7
    assert {row[5] for row in from_kafka["lookup_audit"]} == {True, False}  # found or not
    for table in ("contact_disclosures", "lookup_audit", "client_overview", "report_log"):
        assert from_kafka[table] == direct[table], table
    assert from_kafka == direct
    everything = repr(from_kafka)
    assert "138****2002" not in everything and "18611112222" not in everything
