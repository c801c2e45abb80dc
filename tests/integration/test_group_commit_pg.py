"""Group commit on PostgreSQL: saves queued behind a batch share one transaction, a
conflicting save alone is refused, and the hash chain covers every event of a batch."""

from __future__ import annotations

import threading
import uuid
from functools import partial
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from tests.support import wait_until
from yingke.bootstrap import Container, conninfo
from yingke.chain import ChainedPostgresRecorder, chain_hash, verify_log
from yingke.group_commit import GroupWriter
from yingke.settings import Settings

pytestmark = pytest.mark.postgres


def events(stream: uuid.UUID, first: int, count: int = 2) -> list[StoredEvent]:
    return [
        StoredEvent(stream, version, "bench.synthetic:Event", f"{stream}-{version}".encode())
        for version in range(first, first + count)
    ]


def queued_are(writer: GroupWriter, count: int) -> bool:
    return writer.queued == count


def waiting_on_lock(settings: Settings) -> int:
    """Backends of this test's database blocked on a heavyweight lock."""
    with psycopg.connect(conninfo(settings)) as probe:
        row = probe.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_queued_saves_commit_together_and_a_conflict_is_refused_alone(
    own_pg_app: Container, own_pg: Settings
) -> None:
    recorder = own_pg_app.store.recorder
    assert isinstance(recorder, ChainedPostgresRecorder)
    writer = recorder.writer
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    results: dict[str, object] = {}
    # What each saving thread is told its events' chain hashes are (receipts sign them).
    told: dict[str, list[bytes | None]] = {}

    def save(name: str, stored: list[StoredEvent]) -> None:
        try:
            results[name] = list(recorder.insert_events(stored) or [])
        except IntegrityError as exc:
            results[name] = exc
        told[name] = [
            recorder.written_hash(uuid.UUID(str(e.originator_id)), e.originator_version)
            for e in stored
        ]

    # Hold the table lock from outside, so the writer's first batch waits on it and the
    # next saves pile up behind it: they must then go in as one second batch.
    blocker = psycopg.connect(conninfo(own_pg))
    table = f"{recorder.datastore.schema}.{recorder.events_table_name}"
    blocker.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
    batches_before = writer.batches
    threads = [threading.Thread(target=save, args=("a", events(first, 1)))]
    threads[0].start()
    # "a" is in flight once its batch's statement waits on the lock held above.
    wait_until(
        lambda: waiting_on_lock(own_pg) >= 1 and writer.queued == 0,
        message="the first batch to wait on the table lock",
    )
    queued = [
        ("b", events(second, 1)),
        ("c", events(third, 1)),
        ("c-again", events(third, 1, 3)),  # decided on the same state as "c": a conflict
    ]
    for count, (name, stored) in enumerate(queued, start=1):
        thread = threading.Thread(target=save, args=(name, stored))
        thread.start()
        threads.append(thread)
        # Queued in this order, so "c" is ahead of its conflicting twin in the batch.
        wait_until(partial(queued_are, writer, count), message=f"{name} to be queued")
    assert not results, "nothing is acknowledged before its batch commits"
    blocker.rollback()
    blocker.close()
    for thread in threads:
        thread.join(timeout=30)

    assert writer.batches - batches_before == 2
    assert isinstance(results["c-again"], IntegrityError)
    ids = [results[name] for name in ("a", "b", "c")]
    flat = [n for i in ids if isinstance(i, list) for n in i]
    assert flat == sorted(flat) and len(set(flat)) == 6
    assert [e.originator_version for e in recorder.select_events(third)] == [1, 2]
    report = verify_log(recorder, own_pg_app.key_dir, start=min(flat))
    assert report.head_position == max(flat) and report.events == len(flat)
    for name, stored in [("a", events(first, 1)), *queued]:
        stored_hashes = [
            chain_hash(recorder, uuid.UUID(str(e.originator_id)), e.originator_version)
            for e in stored
        ]
        if name == "c-again":
            assert told[name] == [None, None, None]  # refused: no hash of its own
        else:
            assert told[name] == stored_hashes and None not in stored_hashes


def test_a_save_that_collides_with_a_stored_event_is_refused(own_pg_app: Container) -> None:
    recorder = own_pg_app.store.recorder
    stream = uuid.uuid4()
    recorder.insert_events(events(stream, 1))
    with pytest.raises(IntegrityError):
        recorder.insert_events(events(stream, 2))
    assert [e.originator_version for e in recorder.select_events(stream)] == [1, 2]
    recorder.insert_events(events(stream, 3))
    assert [e.originator_version for e in recorder.select_events(stream)] == [1, 2, 3, 4]


def test_a_batch_is_two_round_trips(own_pg_app: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """BEGIN with the lock and the one read (which also takes the notification ids);
    the one insert of events, keys and chain rows with COMMIT (ADR 0071; three before
    it, and ``conn.transaction()`` in pipeline mode nested pipelines that synced on entry
    and exit: six). A fetch is a flush request and a wait for the answer; leaving the
    pipeline is a sync and a final fetch, one round trip."""
    from psycopg import _pipeline_base

    recorder = own_pg_app.store.recorder
    stream = uuid.uuid4()
    recorder.insert_events(events(stream, 1))
    trips: list[str] = []
    sync, fetch = _pipeline_base.BasePipeline._enqueue_sync, _pipeline_base.BasePipeline._fetch_gen

    def counted_sync(self: Any) -> None:
        trips.append("sync")
        sync(self)

    def counted_fetch(self: Any, *, flush: bool) -> Any:
        if flush:
            trips.append("flush")
        return fetch(self, flush=flush)

    monkeypatch.setattr(_pipeline_base.BasePipeline, "_enqueue_sync", counted_sync)
    monkeypatch.setattr(_pipeline_base.BasePipeline, "_fetch_gen", counted_fetch)
    recorder.insert_events(events(stream, 3))
    monkeypatch.undo()
    assert trips == ["flush", "sync", "flush"]  # read; events, keys, chain + COMMIT
    assert [e.originator_version for e in recorder.select_events(stream)] == [1, 2, 3, 4]


def test_a_batch_notifies_the_stores_channel_when_it_commits(own_pg_app: Container) -> None:
    """The lock and the NOTIFY go as one statement in the batch (issue 15): listeners on
    the library's channel (other processes' followers) still hear every append."""
    recorder = own_pg_app.store.recorder
    assert isinstance(recorder, ChainedPostgresRecorder)
    with psycopg.connect(conninfo(own_pg_app.settings), autocommit=True) as listener:
        listener.execute(f'LISTEN "{recorder.channel_name}"')
        recorder.insert_events(events(uuid.uuid4(), 1))
        heard = list(listener.notifies(timeout=30, stop_after=1))
    assert [n.channel for n in heard] == [recorder.channel_name]


def test_a_batch_gives_up_on_the_table_lock_after_the_stores_lock_timeout(
    own_pg_app: Container, own_pg: Settings
) -> None:
    """The library's ``SET LOCAL lock_timeout`` still applies to the batch's lock."""
    shared = own_pg_app.store.recorder
    assert isinstance(shared, ChainedPostgresRecorder)
    shared.datastore.lock_timeout = 1
    recorder = ChainedPostgresRecorder(shared.datastore, events_table_name=shared.events_table_name)
    outcome: list[BaseException] = []

    def save() -> None:
        try:
            recorder.insert_events(events(uuid.uuid4(), 1))
        except BaseException as exc:
            outcome.append(exc)

    blocker = psycopg.connect(conninfo(own_pg))
    saver = threading.Thread(target=save)
    try:
        blocker.execute(f"LOCK TABLE {shared.events_table_name} IN EXCLUSIVE MODE")
        saver.start()
        # Without the timeout the save would wait for the blocker: fail, do not hang.
        wait_until(lambda: not saver.is_alive(), message="the save to give up on the lock")
    finally:
        blocker.rollback()
        blocker.close()
        saver.join(timeout=30)
        recorder.close_writer()
    assert len(outcome) == 1 and "lock timeout" in str(outcome[0])


def test_without_group_commit_a_save_appends_and_chains_in_its_own_transaction(
    own_pg_app: Container,
) -> None:
    """The benchmark's baseline path (the library's insert with our statements, read
    through dict rows) stores and chains what the writer would."""
    recorder = own_pg_app.store.recorder
    assert isinstance(recorder, ChainedPostgresRecorder)
    recorder.group_commit = False
    stream = uuid.uuid4()
    first = list(recorder.insert_events(events(stream, 1)) or [])
    second = list(recorder.insert_events(events(stream, 3)) or [])
    assert first < second and len(first + second) == 4
    assert [e.originator_version for e in recorder.select_events(stream)] == [1, 2, 3, 4]
    for version in (1, 2, 3, 4):
        assert recorder.written_hash(stream, version) == (
            chain_hash(recorder, stream, version) if version > 2 else None
        )
    report = verify_log(recorder, own_pg_app.key_dir, start=first[0])
    assert report.events == 4 and report.head_position == second[-1]
