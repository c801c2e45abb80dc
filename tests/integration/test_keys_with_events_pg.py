"""A new buyer's subject key commits in the group-commit batch of the events sealed under
it (ADR 0065): never an event without its key, and a refused save leaves no key behind."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import IntegrityError, StoredEvent

from tests.support import file_report
from yingke import chain, group_commit
from yingke.bootstrap import Container, conninfo
from yingke.chain import ChainedPostgresRecorder
from yingke.group_commit import Request
from yingke.settings import Settings
from yingke.vault import TABLE, NewKey, Vault

pytestmark = pytest.mark.postgres


def stored_key(settings: Settings, subject: uuid.UUID | str) -> bytes | None:
    with psycopg.connect(conninfo(settings)) as conn:
        row = conn.execute(
            f"SELECT wrapped FROM {TABLE} WHERE subject = %s", (str(subject),)
        ).fetchone()
    return bytes(row[0]) if row else None


def client_id(app: Container, project: str, phone: str) -> uuid.UUID:
    return app.keyer.client_id(project, phone)


def recorder_of(app: Container) -> ChainedPostgresRecorder:
    recorder = app.store.recorder
    assert isinstance(recorder, ChainedPostgresRecorder)
    return recorder


def test_a_save_that_fails_in_its_batch_leaves_no_key_of_a_new_buyer(
    own_pg_app: Container, own_pg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = recorder_of(own_pg_app)
    assert recorder.group_commit

    # Fails inside the batch transaction, after the events (and the keys) were inserted:
    # the statement sent in COMMIT's place fails, so the transaction never commits.
    monkeypatch.setattr(chain, "_COMMIT", b"SELECT 1 / 0")
    with pytest.raises(Exception, match="division by zero"):
        file_report(own_pg_app, "proj-k", "ch-1", "13800001111")
    assert stored_key(own_pg, client_id(own_pg_app, "proj-k", "13800001111")) is None

    monkeypatch.undo()
    body = file_report(own_pg_app, "proj-k", "ch-1", "13800001111")
    buyer = uuid.UUID(body["client_id"])
    assert stored_key(own_pg, buyer) is not None
    phone = own_pg_app.clients.client(buyer).pii
    assert own_pg_app.vault.open(buyer, phone) == {"phone": "13800001111"}


def test_a_request_refused_in_its_batch_stores_no_key(
    own_pg_app: Container, own_pg: Settings
) -> None:
    recorder = recorder_of(own_pg_app)
    vault = own_pg_app.vault
    stream, other, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def request(subject: uuid.UUID, events_of: uuid.UUID) -> Request:
        raw = AESGCM.generate_key(256)
        key = NewKey(str(subject), vault._wrap(str(subject), raw), raw, AESGCM(raw))
        event = StoredEvent(events_of, 1, "bench.synthetic:Event", b"{}")
        return Request([event], [key])

    # Already has a key (stored outside the writer, as an import does).
    kept = vault._wrap(str(third), AESGCM.generate_key(256))
    assert vault._store.put_if_absent(str(third), kept) == kept
    first = request(stream, stream)
    twin = request(stream, stream)  # decided on the same state: its events conflict
    key_only = request(other, uuid.uuid4())  # no event conflict, but the same subject…
    key_twin = request(other, uuid.uuid4())  # …as this one: the second is refused
    stale = request(third, uuid.uuid4())  # its subject has a key already
    recorder._write_batch([first, twin, key_only, key_twin, stale])

    assert first.error is None and key_only.error is None
    for refused in (twin, key_twin, stale):
        assert isinstance(refused.error, IntegrityError)
    assert stored_key(own_pg, stream) == first.keys[0].wrapped
    assert stored_key(own_pg, other) == key_only.keys[0].wrapped
    assert stored_key(own_pg, third) == kept
    assert recorder.select_events(stale.events[0].originator_id) == []
    assert recorder.select_events(key_twin.events[0].originator_id) == []


def counted_reads(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    original = vault._store.get

    def get(subject: str) -> bytes | None:
        reads.append(subject)
        return original(subject)

    monkeypatch.setattr(vault._store, "get", get)
    return reads


def test_a_new_buyers_report_reads_no_key_and_a_known_buyers_reads_one(
    own_pg_app: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = counted_reads(own_pg_app.vault, monkeypatch)
    body = file_report(own_pg_app, "proj-k", "ch-1", "13800003333")
    assert reads == []
    again = file_report(own_pg_app, "proj-k", "ch-2", "13800003333")
    assert again["status"] == "rejected" and reads == [body["client_id"]]


def test_a_key_stored_for_a_buyer_without_a_stream_makes_the_report_decide_again(
    own_pg_app: Container, own_pg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key left by an import (or by a save before ADR 0065) for a buyer with no
    stream: the first attempt does not look for it, its batch refuses it, and the next
    attempt seals under the key that is stored."""
    vault = own_pg_app.vault
    buyer = client_id(own_pg_app, "proj-k", "13800002222")
    stray = vault._wrap(str(buyer), AESGCM.generate_key(256))
    assert vault._store.put_if_absent(str(buyer), stray) == stray
    reads = counted_reads(vault, monkeypatch)
    body = file_report(own_pg_app, "proj-k", "ch-1", "13800002222")
    assert uuid.UUID(body["client_id"]) == buyer
    assert reads == [str(buyer)]  # by the second attempt only, once for both its seals
    assert stored_key(own_pg, buyer) == stray
    token = own_pg_app.clients.client(buyer).pii
    assert own_pg_app.vault.open(buyer, token) == {"phone": "13800002222"}


def test_a_key_committed_under_an_epoch_a_rotation_destroyed_is_rewrapped(
    own_pg_app: Container, own_pg: Settings
) -> None:
    vault = own_pg_app.vault
    subject = uuid.uuid4()
    vault.defer_new_keys = True
    with vault.unit():
        token = vault.seal(subject, {"name": "李四"})
        keys = vault.take_new_keys()
    assert [k.subject for k in keys] == [str(subject)]
    assert stored_key(own_pg, subject) is None  # deferred to the save
    # The rotation ran while the save was in flight: its scan did not see the row.
    vault.rotate()
    assert vault._store.put_if_absent(str(subject), keys[0].wrapped) == keys[0].wrapped
    vault.keys_stored(keys)
    assert vault.epoch_of(stored_key(own_pg, subject) or b"") == vault._keys.epochs()[-1]
    assert vault.open(subject, token) == {"name": "李四"}


def test_a_key_stored_outside_the_writer_after_its_read_fails_the_batch_whole(
    own_pg_app: Container, own_pg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the batch's read under the lock and its insert an import stores a key for
    one of its subjects: the insert violates the key table's key, nothing of the batch
    commits, and every request hears IntegrityError (its unit of work decides again)."""
    recorder = recorder_of(own_pg_app)
    vault = own_pg_app.vault
    subject, other = uuid.uuid4(), uuid.uuid4()

    def request(who: uuid.UUID) -> Request:
        raw = AESGCM.generate_key(256)
        key = NewKey(str(who), vault._wrap(str(who), raw), raw, AESGCM(raw))
        return Request([StoredEvent(who, 1, "bench.synthetic:Event", b"{}")], [key])

    imported = vault._wrap(str(subject), AESGCM.generate_key(256))
    decide = group_commit.partition

    def import_meanwhile(*args: Any, **kwargs: Any) -> Any:
        assert vault._store.put_if_absent(str(subject), imported) == imported
        return decide(*args, **kwargs)

    # The writer's split of the batch runs between its read and its insert.
    monkeypatch.setattr("yingke.chain.partition", import_meanwhile)
    first, second = request(subject), request(other)
    with pytest.raises(IntegrityError):
        recorder._write_batch([first, second])
    monkeypatch.undo()
    assert first.ids is None and second.ids is None
    assert stored_key(own_pg, subject) == imported and stored_key(own_pg, other) is None
    assert recorder.select_events(subject) == [] and recorder.select_events(other) == []
