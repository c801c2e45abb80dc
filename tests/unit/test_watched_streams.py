"""The kept copies' catch-up (domain/services/watched.py) with a scripted log: who waits
for which catch-up, and that nobody is served a copy older than their arrival."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from domain.policy import ProjectPolicy
from domain.services.uow import READER_ARRIVED
from domain.services.watched import WatchedStreams

# A hang guard for the threads below, not a measure: each wait ends at once when the
# code is right.
GUARD = 30.0
TRACE = {"actor": {"id": "tester", "role": "system"}, "correlation_id": "watched-test"}


class ScriptedLog:
    """A recorder whose log the test writes, and whose catch-up query can be held."""

    def __init__(self) -> None:
        self.head = 0
        self.events: list[tuple[int, uuid.UUID]] = []
        self.queries = 0
        self.hold = threading.Event()
        self.held = threading.Event()  # a query is being held
        self.release = threading.Event()

    def append(self, stream: uuid.UUID) -> None:
        self.head += 1
        self.events.append((self.head, stream))

    def max_notification_id(self) -> int:
        return self.head

    def watched_since(
        self, start: int, topics: Any, limit: int
    ) -> tuple[int, list[tuple[int, uuid.UUID]]]:
        # The snapshot is taken as the query starts, as PostgreSQL's is.
        head, found = self.head, [e for e in self.events if start < e[0] <= self.head]
        self.queries += 1
        if self.hold.is_set():
            self.held.set()
            assert self.release.wait(GUARD)
        return head, found[:limit]


class Store:
    def __init__(self, recorder: ScriptedLog) -> None:
        self.recorder = recorder


class Streams:
    """The unit of work's ``find``: the policy stream at its current version."""

    def __init__(self, recorder: ScriptedLog, project_id: str) -> None:
        self.store = Store(recorder)
        self.version = 0
        self.project_id = project_id

    def find(self, cls: type[Any], stream: uuid.UUID) -> Any:
        policy = ProjectPolicy.open(self.project_id, datetime.now(UTC), TRACE)
        for n in range(self.version):
            policy.change({"protection": f"P{10 + n}D"}, datetime.now(UTC), TRACE)
        return policy


def _watched(project_id: str) -> tuple[WatchedStreams, ScriptedLog, Streams, uuid.UUID]:
    log = ScriptedLog()
    streams = Streams(log, project_id)
    watched = WatchedStreams(streams, [ProjectPolicy])  # type: ignore[arg-type]
    return watched, log, streams, ProjectPolicy.create_id(project_id)


def _in_thread(work: Any, arrived: float | None = None) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        if arrived is not None:
            READER_ARRIVED.set(arrived)
        out.append(work())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_reader_already_caught_up_is_not_held_by_another_readers_query() -> None:
    watched, log, _, policy_id = _watched("p-held")
    arrived = time.monotonic()
    first, out = _in_thread(lambda: watched.find(ProjectPolicy, policy_id), arrived)
    first.join(GUARD)
    assert out and out[0].current.version == 0
    # A later reader's catch-up is out and held.
    log.hold.set()
    later, _ = _in_thread(watched.catch_up)
    assert log.held.wait(GUARD)
    # A reader of the same request (arrived before the last catch-up began) reads its
    # copy without waiting for that query.
    again, out = _in_thread(lambda: watched.find(ProjectPolicy, policy_id), arrived)
    again.join(GUARD)
    caught = not again.is_alive()
    log.release.set()
    later.join(GUARD)
    assert caught
    assert out[0].current.version == 0


def test_a_reader_arriving_while_a_query_is_out_waits_for_the_next_one() -> None:
    watched, log, streams, policy_id = _watched("p-next")
    kept = watched.find(ProjectPolicy, policy_id)
    assert kept is not None and kept.current.version == 0
    log.hold.set()
    early, _ = _in_thread(watched.catch_up)
    assert log.held.wait(GUARD)  # its snapshot is taken: it cannot see what follows
    log.hold.clear()
    # A change commits, then a reader arrives while that query is still out.
    streams.version = 1
    log.append(policy_id)
    reader, out = _in_thread(lambda: watched.find(ProjectPolicy, policy_id))
    log.release.set()
    early.join(GUARD)
    reader.join(GUARD)
    assert out[0].current.version == 1
    assert log.queries == 3  # the kept copy's, the one out, and the reader's own
