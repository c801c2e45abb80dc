"""Group commit: one writer per process appends many commands' events in one transaction.

eventsourcing takes an EXCLUSIVE lock on the events table for every append (readers of
the notification log must never pass over a position that commits later), and the hash
chain's log head (ADR 0035) needs appends in one order anyway. So appends are serial;
what can change is how much each turn of the lock carries. Here every thread that saves
hands its stored events to the process's writer and waits; the writer takes everything
queued, appends it in one transaction (one lock, one flush) and then wakes each caller
with its own notification ids or its own error. A lone save is written at once: batches
form only because saves arrive while the previous batch is being written (ADR 0054).

Per-stream optimistic concurrency is kept exactly: under the lock, before inserting, the
writer looks up every (stream, version) the batch would write; a request that would
collide with a stored event, or with an earlier request in the same batch, is left out
and gets ``IntegrityError`` (its unit of work decides again on fresh state) while the
rest of the batch commits. Nobody is answered before the transaction commits.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eventsourcing.persistence import IntegrityError, StoredEvent

if TYPE_CHECKING:
    from yingke.vault import NewKey

# The events and ids of one caller's save; ``error`` if it was refused or the batch failed.
Batch = list["Request"]
WriteBatch = Callable[[Batch], None]

IDLE_EXIT_SECONDS = 10.0
MAX_BATCH_EVENTS = 5000


@dataclass(eq=False)
class Request:
    events: Sequence[StoredEvent]
    # Subject keys created by the command, stored in the batch's transaction (ADR 0065).
    keys: Sequence[NewKey] = ()
    ids: Sequence[int] | None = None
    # The chain hash of each event, set with ``ids`` once the batch committed: a receipt
    # signs the hash of the event it proves without reading it back (ADR 0061).
    hashes: Sequence[bytes] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def stream_versions(self) -> list[tuple[uuid.UUID, int]]:
        return [(_uuid(e.originator_id), e.originator_version) for e in self.events]


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def partition(
    batch: Batch,
    stored: set[tuple[uuid.UUID, int]],
    stored_subjects: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[Batch, Batch]:
    """Split a batch into requests that can be written and requests that conflict.

    ``stored`` holds the (stream, version) pairs of the batch already in the table; a
    request conflicts if it would write one of them or one an earlier accepted request
    in the batch writes — exactly what the table's primary key would refuse. The same
    for the subject keys a request creates: ``stored_subjects`` already have one.
    """
    claimed = set(stored)
    subjects = set(stored_subjects)
    accepted: Batch = []
    refused: Batch = []
    for request in batch:
        keys = request.stream_versions()
        mine = [k.subject for k in request.keys]
        if (
            any(k in claimed for k in keys)
            or len(set(keys)) != len(keys)
            or any(s in subjects for s in mine)
        ):
            refused.append(request)
            continue
        claimed.update(keys)
        subjects.update(mine)
        accepted.append(request)
    return accepted, refused


class GroupWriter:
    """The one writer thread of a process; ``submit`` blocks until the batch commits."""

    def __init__(self, write: WriteBatch, max_events: int = MAX_BATCH_EVENTS) -> None:
        self._write = write
        self._max_events = max_events
        self._queue: list[Request] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        # What the writer has done, for the benchmark and metrics: batches and requests.
        self.batches = 0
        self.requests = 0

    def submit_request(self, events: Sequence[StoredEvent], keys: Sequence[NewKey] = ()) -> Request:
        """Queue ``events`` (and the subject ``keys`` they are sealed under) for the next
        batch; answer once it committed (the request holds the notification ids and
        chain hashes), or raise what refused it."""
        request = Request(events, keys)
        with self._cond:
            if self._closed:
                raise RuntimeError("the event writer is closed")
            self._queue.append(request)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="yingke-group-commit", daemon=True
                )
                self._thread.start()
            else:
                self._cond.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.ids is not None
        return request

    @property
    def queued(self) -> int:
        """Saves waiting for the next batch (the one being written is not counted)."""
        with self._cond:
            return len(self._queue)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _take(self) -> Batch | None:
        with self._cond:
            deadline = time.monotonic() + IDLE_EXIT_SECONDS
            while not self._queue:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    # Idle (or closed): the thread ends; the next submit starts another.
                    self._thread = None
                    return None
                self._cond.wait(remaining)
            taken = 0
            batch: Batch = []
            while self._queue and (
                not batch or taken + len(self._queue[0].events) <= self._max_events
            ):
                request = self._queue.pop(0)
                taken += len(request.events)
                batch.append(request)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._write(batch)
            except BaseException as exc:  # every caller must be woken, whatever happened
                # Nothing of a failed batch committed, whatever ids were handed out.
                for request in batch:
                    request.ids = None
                    request.hashes = None
                    request.error = _copy(exc)
            self.batches += 1
            self.requests += len(batch)
            for request in batch:
                if request.ids is None and request.error is None:
                    request.error = RuntimeError("the batch ended without an answer")
                request.done.set()


def _copy(exc: BaseException) -> BaseException:
    """Each waiting thread raises its own instance (tracebacks are per raise)."""
    try:
        copy = type(exc)(*exc.args)
    except Exception:
        return exc
    copy.__cause__ = exc
    return copy


def refuse(request: Request) -> None:
    request.error = IntegrityError(
        "a stream in this save was written by another command first (optimistic concurrency)"
    )
