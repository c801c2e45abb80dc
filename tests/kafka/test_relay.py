"""The relay: the notification log on Kafka, in per-client order, at least once, by one relay."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from consumers import contract
from consumers.broker import KafkaPublisher, Record
from consumers.relay import PostgresRelayState, Relay
from tests.kafka.conftest import ADMIN_KEY, ContainerFactory, read_topic
from tests.kafka.scenario import busy_fortnight
from tests.support import FakeClock, ctx, wait_until
from yingke.bootstrap import conninfo
from yingke.settings import Settings

pytestmark = pytest.mark.postgres


def public_positions(app: Any) -> list[int]:
    """Positions of every event in the log that the contract publishes."""
    notifications = app.store.recorder.select_notifications(start=0, limit=100_000)
    return [
        n.id
        for n in notifications
        if contract.to_message(app.store.mapper.to_domain_event(n), n.id) is not None
    ]


def relay_for(settings: Settings, app: Any, publisher: Any = None) -> Relay:
    state = PostgresRelayState(conninfo(settings), settings.kafka_topic)
    publisher = publisher or KafkaPublisher(settings.kafka_bootstrap)
    return Relay(app.store, state, publisher, settings.kafka_topic, batch_size=20)


def test_events_written_through_the_api_reach_kafka_in_per_client_order_with_headers(
    settings: Settings, containers: ContainerFactory
) -> None:
    container = containers()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(create_app(container)) as http:

        def principal(body: dict[str, Any]) -> dict[str, str]:
            made = http.post("/v1/principals", json=body, headers=admin)
            assert made.status_code == 201, made.text
            return {"Authorization": f"Bearer {made.json()['key']}"}

        agent = principal({"id": "agent-api", "role": "channel_agent", "partner_id": "pa"})
        consultant = principal({"id": "cons-api", "role": "consultant", "project_ids": ["p1"]})
        for i in range(6):
            phone = f"1381234{i:04d}"
            filed = http.post(
                "/v1/reports",
                json={
                    "project_id": "p1",
                    "partner_id": "pa",
                    "agent_id": "agent-api",
                    "client_name": "韩梅梅",
                    "phone": phone,
                },
                headers={**agent, "X-Request-ID": f"req-report-{i}"},
            )
            assert filed.status_code == 201, filed.text
            if i % 2 == 0:
                visit = http.post(
                    "/v1/visits",
                    json={
                        "project_id": "p1",
                        "phone": phone,
                        "client_name": "韩梅梅",
                        "consultant_id": "cons-api",
                    },
                    headers={**consultant, "X-Request-ID": f"req-visit-{i}"},
                )
                assert visit.status_code == 201, visit.text
    relay = relay_for(settings, container)

    relay.catch_up()

    records = read_topic(settings.kafka_bootstrap, settings.kafka_topic)
    messages = [contract.decode(r.value) for r in records]
    assert [m["position"] for m in messages] == public_positions(container)
    versions: dict[str, list[int]] = defaultdict(list)
    for record, message in zip(records, messages, strict=True):
        assert record.key == message["aggregate_id"].encode()
        headers = {k: v.decode() for k, v in record.headers}
        assert headers == {
            "event_id": message["event_id"],
            "type": message["type"],
            "schema_version": str(message["schema_version"]),
            "position": str(message["position"]),
            "correlation_id": message["correlation_id"],
        }
        versions[message["aggregate_id"]].append(message["aggregate_version"])
    assert all(v == sorted(v) and len(set(v)) == len(v) for v in versions.values())
    visits = [m for m in messages if m["type"] == "Client.OwnershipAwarded"]
    assert {m["correlation_id"] for m in visits} == {"req-visit-0", "req-visit-2", "req-visit-4"}
    assert relay.published == len(messages)


class DiesAfterSending:
    """A relay state whose position write fails once: the process died right after send."""

    def __init__(self, inner: PostgresRelayState) -> None:
        self.inner = inner
        self.armed = False

    def acquire(self) -> bool:
        return self.inner.acquire()

    def position(self) -> int:
        return self.inner.position()

    def save(self, position: int, published: int) -> None:
        if self.armed:
            self.armed = False
            raise SystemExit("killed between send and position write")
        self.inner.save(position, published)

    def release(self) -> None:
        self.inner.release()


def test_a_relay_killed_between_send_and_position_write_resends_and_skips_nothing(
    settings: Settings, containers: ContainerFactory
) -> None:
    container = containers(FakeClock())
    busy_fortnight(container, container.clock)  # type: ignore[arg-type]
    first = relay_for(settings, container)
    dying = DiesAfterSending(first.state)  # type: ignore[arg-type]
    first.state = dying
    first.run_once()  # one batch is acknowledged, its position written
    dying.armed = True
    with pytest.raises(SystemExit):
        first.run_once()  # the second batch is acknowledged, then the process dies
    first.state.release()

    restarted = relay_for(settings, container)
    restarted.catch_up()

    published = [
        contract.decode(r.value)["position"]
        for r in read_topic(settings.kafka_bootstrap, settings.kafka_topic)
    ]
    batch_one, last_one = restarted.batch(0)
    batch_two, _ = restarted.batch(last_one)
    expected = public_positions(container)
    one, two = (
        expected[: len(batch_one)],
        expected[len(batch_one) : len(batch_one) + len(batch_two)],
    )
    assert two, "the scenario must span more than two batches"
    assert published == one + two + two + expected[len(one) + len(two) :]  # re-sent, none lost


class Counting:
    def __init__(self, inner: KafkaPublisher) -> None:
        self.inner = inner
        self.records = 0

    def publish(self, topic: str, records: Sequence[Record]) -> None:
        self.inner.publish(topic, records)
        self.records += len(records)


def test_of_two_relays_only_the_lock_holder_publishes_and_the_other_takes_over(
    settings: Settings, containers: ContainerFactory
) -> None:
    container = containers(FakeClock())
    busy_fortnight(container, container.clock, project="proj-two-relays")  # type: ignore[arg-type]
    relays = [
        relay_for(settings, container, Counting(KafkaPublisher(settings.kafka_bootstrap)))
        for _ in range(2)
    ]
    stop = threading.Event()

    def run(relay: Relay) -> None:
        while not stop.is_set():
            if not relay.run_once():
                time.sleep(0.01)

    expected = public_positions(container)

    def counts() -> list[int]:
        return sorted(r.publisher.records for r in relays)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=run, args=(r,)) for r in relays]
    for t in threads:
        t.start()
    try:
        # Both keep trying until the log is out, however long a loaded machine takes.
        wait_until(
            lambda: sum(counts()) >= len(expected),
            timeout=120,
            message=lambda: f"{len(expected)} records published, have {counts()}",
        )
        wait_until(lambda: all(r.standby or r.published for r in relays), message="both to try")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert counts() == [0, len(expected)]
    holder, standby = sorted(relays, key=lambda r: r.publisher.records)[::-1]  # type: ignore[attr-defined]
    assert standby.standby and not standby.state.acquire()

    holder.state.release()  # the holder stops (or its session dies)
    container.principals.register_principal(ctx(), "late", "auditor", None, [], "k-late")
    assert standby.catch_up() > 0
    positions = [
        contract.decode(r.value)["position"]
        for r in read_topic(settings.kafka_bootstrap, settings.kafka_topic)
    ]
    assert positions == public_positions(container)  # taken over exactly where it was
