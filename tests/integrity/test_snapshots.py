"""Snapshots fold long streams faster without weakening the chain (ADR 0060): answers
equal a full replay, an edited snapshot is refused, and an event edited under a
snapshot is still caught. Their states are JSON, never pickle (ADR 0068): a forged row
runs nothing, and a sealed but false one is refused before it is served."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.services.clients import Clients, FullHistory
from tests.integrity.conftest import Store
from tests.support import ctx, file_report, register_consultant, register_visit
from yingke.chain import ChainBroken, integrity_failures
from yingke.snapshots import CODE, Snapshots, migrate, snapshot_key

FOLLOW_UPS = 23  # with the report, visit and their events: a stream of ~30 versions
EVERY = 5


def _long_stream(store: Store) -> tuple[uuid.UUID, str, list[datetime]]:
    """A buyer with an owner and many follow-ups, an hour apart; instants to ask about."""
    app = store.container
    clock: Any = app.clock
    consultant = register_consultant(app, "proj-a")
    body = file_report(app, "proj-a", "ch-1", "13812345678")
    client_id = uuid.UUID(body["client_id"])
    instants = [clock() - timedelta(seconds=1), clock()]
    clock.advance(minutes=30)
    register_visit(app, "proj-a", "13812345678", consultant, "ch-1")
    for n in range(FOLLOW_UPS):
        instants.append(clock.advance(minutes=59))
        app.followups.log_follow_up(
            ctx(), client_id, method="call", summary=f"#{n}", effective=True
        )
        instants.append(clock.advance(minutes=1))
    instants.append(clock.advance(days=400))  # after protection ran out
    return client_id, consultant, instants


def _snapshots(store: Store) -> Snapshots:
    """A process's snapshot reader, taking one every EVERY versions."""
    app = store.container
    return Snapshots(app.uow, snapshot_key(app.keyer.digest("yingke-snapshots")), interval=EVERY)


def _answers(clients: Clients, client_id: uuid.UUID, instants: list[datetime]) -> list[Any]:
    return [clients.ownership_as_of(client_id, at) for at in instants]


def test_folding_from_snapshots_answers_as_a_full_replay(store: Store) -> None:
    client_id, _, instants = _long_stream(store)
    app = store.container
    full = Clients(app.uow, app.clock, app.keyer, app.vault, FullHistory(app.uow))
    snapshots = _snapshots(store)
    fast = Clients(app.uow, app.clock, app.keyer, app.vault, snapshots)
    expected = _answers(full, client_id, instants)
    assert fast.loaded(client_id) is not None  # the first read takes the snapshots
    version = app.clients.client(client_id).version
    assert snapshots.taken == version // EVERY > 3
    assert _answers(fast, client_id, instants) == expected
    assert snapshots.used >= len(instants) - 3  # all but the asks before the first snapshot
    assert snapshots.taken == version // EVERY  # none taken twice
    current = fast.loaded(client_id)
    assert current is not None and current.client.version == version
    assert len(current.events) == version % EVERY  # only the tail was read
    assert snapshots.compared == 0  # it took every row it used from events it had folded

    # Another process compares a row with its events on first use; folding to the
    # latest passes every earlier one, which are then known by their bytes.
    other = _snapshots(store)
    later = Clients(app.uow, app.clock, app.keyer, app.vault, other)
    assert later.loaded(client_id) is not None
    assert _answers(later, client_id, instants) == expected
    assert other.taken == 0 and other.compared == 1


def test_an_edited_snapshot_is_refused(store: Store) -> None:
    client_id, _, instants = _long_stream(store)
    snapshots = _snapshots(store)
    app = store.container
    clients = Clients(app.uow, app.clock, app.keyer, app.vault, snapshots)
    clients.loaded(client_id)
    (row,) = store.sql(
        "SELECT originator_version, state FROM yingke_snapshots WHERE originator_id = ? "
        "ORDER BY originator_version DESC LIMIT 1",
        store.stream_param(client_id),
    )
    forged = bytes(row[1]).replace(b"ch-1", b"ch-9")
    assert forged != bytes(row[1])
    store.sql(
        "UPDATE yingke_snapshots SET state = ? WHERE originator_id = ? AND originator_version = ?",
        forged,
        store.stream_param(client_id),
        row[0],
    )
    before = integrity_failures()
    with pytest.raises(ChainBroken, match="seal"):
        clients.loaded(client_id)
    with pytest.raises(ChainBroken, match="seal"):
        clients.ownership_as_of(client_id, instants[-2])
    assert integrity_failures() == before + 2


def test_an_event_edited_under_a_snapshot_is_caught_by_the_next_process(store: Store) -> None:
    """A process re-reads the events under a snapshot through the chain check the first
    time it uses it: an edit there cannot be served as truth."""
    client_id, consultant, instants = _long_stream(store)
    app = store.container
    Clients(app.uow, app.clock, app.keyer, app.vault, _snapshots(store)).loaded(client_id)
    stream = store.stream_param(client_id)
    where = "WHERE originator_id = ? AND originator_version = ?"
    (awarded,) = store.sql(
        f"SELECT originator_version, state FROM {store.events} WHERE originator_id = ? "
        "AND topic LIKE ?",
        stream,
        "%OwnershipAwarded",
    )
    assert awarded[0] < EVERY * 2  # under the snapshots
    forged = bytes(awarded[1]).replace(consultant.encode(), b"cons-forger")
    assert forged != bytes(awarded[1])
    store.sql(f"UPDATE {store.events} SET state = ? {where}", forged, stream, awarded[0])

    later = Clients(app.uow, app.clock, app.keyer, app.vault, _snapshots(store))
    before = integrity_failures()
    with pytest.raises(ChainBroken) as caught:
        later.ownership_as_of(client_id, instants[-2])
    assert caught.value.version == awarded[0]
    assert integrity_failures() == before + 1


class _Touch:
    """Unpickling this creates the file: what a forged pickle would do on the server."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _rows(store: Store, client_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return store.sql(
        "SELECT originator_version, last_at, head_hash, code, state FROM yingke_snapshots "
        "WHERE originator_id = ? ORDER BY originator_version",
        store.stream_param(client_id),
    )


def _v1_seal(store: Store, stream: uuid.UUID, row: tuple[Any, ...], state: bytes) -> bytes:
    """The seal ADR 0060's code put on a pickled row (the test holds the secret)."""
    version, last_at, head, code = row[0], row[1], bytes(row[2]), str(row[3])
    key = snapshot_key(store.container.keyer.digest("yingke-snapshots"))
    header = stream.bytes + version.to_bytes(8, "big") + last_at.to_bytes(8, "big", signed=True)
    message = b"yingke-snapshot-v1" + header + head + code.encode() + state
    return hmac.new(key, message, hashlib.sha256).digest()


def test_a_pickled_snapshot_with_a_valid_seal_runs_nothing(store: Store, tmp_path: Path) -> None:
    """Rows as ADR 0060's code wrote them, sealed with the secret, whose pickle would create
    a file: they are never unpickled, and every answer is the full replay's."""
    client_id, _, instants = _long_stream(store)
    app = store.container
    full = Clients(app.uow, app.clock, app.keyer, app.vault, FullHistory(app.uow))
    expected = _answers(full, client_id, instants)
    Clients(app.uow, app.clock, app.keyer, app.vault, _snapshots(store)).loaded(client_id)
    rows = _rows(store, client_id)
    assert rows
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Touch(marker))
    store.sql("DELETE FROM yingke_snapshots")
    for row in rows:
        store.sql(
            "INSERT INTO yingke_snapshots (originator_id, originator_version, last_at, "
            "head_hash, code, state, mac) VALUES (?, ?, ?, ?, ?, ?, ?)",
            store.stream_param(client_id),
            row[0],
            row[1],
            bytes(row[2]),
            "pre-0068-release",
            payload,
            _v1_seal(store, client_id, (*row[:3], "pre-0068-release"), payload),
        )

    snapshots = _snapshots(store)
    clients = Clients(app.uow, app.clock, app.keyer, app.vault, snapshots)
    before = integrity_failures()
    assert _answers(clients, client_id, instants) == expected
    assert not marker.exists()
    assert snapshots.taken == len(rows) and snapshots.used > 0  # fresh ones, of this code
    assert integrity_failures() == before

    # The same rows relabelled as this code's: the v1 seal does not verify under v2.
    store.sql(
        "UPDATE yingke_snapshots SET state = ?, mac = ? WHERE code = ?",
        payload,
        _v1_seal(store, client_id, (*rows[-1][:3], CODE), payload),
        CODE,
    )
    with pytest.raises(ChainBroken, match="seal"):
        Clients(app.uow, app.clock, app.keyer, app.vault, _snapshots(store)).loaded(client_id)
    assert integrity_failures() == before + 1
    assert not marker.exists()


def test_a_pickle_sealed_as_this_code_seals_is_refused_not_run(
    store: Store, tmp_path: Path
) -> None:
    """Someone holding the secret seals a pickle as this code would seal a snapshot: it
    passes the seal and the chain binding, and is still only bytes that do not decode."""
    client_id, _, _ = _long_stream(store)
    snapshots = _snapshots(store)
    app = store.container
    clients = Clients(app.uow, app.clock, app.keyer, app.vault, snapshots)
    clients.loaded(client_id)
    row = _rows(store, client_id)[-1]
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Touch(marker))
    mac = snapshots._mac(client_id, row[0], row[1], bytes(row[2]), payload)
    store.sql(
        "UPDATE yingke_snapshots SET state = ?, mac = ? WHERE originator_id = ? AND code = ? "
        "AND originator_version = ?",
        payload,
        mac,
        store.stream_param(client_id),
        CODE,
        row[0],
    )
    before = integrity_failures()
    with pytest.raises(ChainBroken, match="does not decode"):
        Clients(app.uow, app.clock, app.keyer, app.vault, _snapshots(store)).loaded(client_id)
    assert integrity_failures() == before + 1
    assert not marker.exists()


def test_a_false_snapshot_sealed_with_the_secret_is_refused(store: Store) -> None:
    """The seal binds a state to the chain's hash at its version, but the chain's hash
    says nothing of the state: a false owner under a seal recomputed with the secret
    passes both. Each process compares a row with a fold of its events before it first
    serves it, so the forgery is refused (by a process that trusted the true row too)."""
    client_id, _, instants = _long_stream(store)
    app = store.container
    snapshots = _snapshots(store)
    clients = Clients(app.uow, app.clock, app.keyer, app.vault, snapshots)
    clients.loaded(client_id)
    assert snapshots.compared == 0  # it took them from the events it had just folded
    row = _rows(store, client_id)[-1]
    body = json.loads(bytes(row[4]))
    assert body["state"]["owner"]["_data_"]["consultant_id"] != "cons-forger"
    body["state"]["owner"]["_data_"]["consultant_id"] = "cons-forger"
    forged = json.dumps(body).encode()
    mac = snapshots._mac(client_id, row[0], row[1], bytes(row[2]), forged)
    where = "WHERE originator_id = ? AND code = ? AND originator_version = ?"
    store.sql(
        f"UPDATE yingke_snapshots SET state = ?, mac = ? {where}",
        forged,
        mac,
        store.stream_param(client_id),
        CODE,
        row[0],
    )
    later = _snapshots(store)
    # What the seal and the chain binding alone let through:
    (latest,) = [r for r in [later._read(client_id, None, None).snapshot] if r is not None]
    assert later._open(client_id, latest).owner.consultant_id == "cons-forger"

    before = integrity_failures()
    for reader in (later, snapshots):
        fresh = Clients(app.uow, app.clock, app.keyer, app.vault, reader)
        with pytest.raises(ChainBroken, match="does not match its events"):
            fresh.loaded(client_id)
        with pytest.raises(ChainBroken, match="does not match its events"):
            fresh.ownership_as_of(client_id, instants[-2])
    assert integrity_failures() == before + 4


def test_two_releases_keep_their_own_snapshots(store: Store) -> None:
    """A rolling deploy runs two releases at once: each reads and writes snapshots of its
    own code beside the other's, and neither replaces the other's."""
    client_id, _, instants = _long_stream(store)
    app = store.container
    full = Clients(app.uow, app.clock, app.keyer, app.vault, FullHistory(app.uow))
    key = snapshot_key(app.keyer.digest("yingke-snapshots"))
    old = Snapshots(app.uow, key, interval=EVERY, code="the-release-before")
    new = _snapshots(store)
    readers = [Clients(app.uow, app.clock, app.keyer, app.vault, s) for s in (old, new)]
    version = app.clients.client(client_id).version
    for _ in range(2):
        for reader in readers:
            assert reader.ownership_as_of(client_id, instants[-2]) == full.ownership_as_of(
                client_id, instants[-2]
            )
            reader.loaded(client_id)
    assert old.taken == new.taken == version // EVERY  # each took its own, once
    assert old.used > 0 and new.used > 0
    counts = store.sql("SELECT code, COUNT(*) FROM yingke_snapshots GROUP BY code ORDER BY code")
    assert sorted(counts) == sorted([("the-release-before", old.taken), (CODE, new.taken)])

    # The next release's migrate drops the rows of other code; the other release's
    # reads take them again (and still answer).
    assert migrate(app.store.recorder) == old.taken
    assert readers[0].ownership_as_of(client_id, instants[-1]) == full.ownership_as_of(
        client_id, instants[-1]
    )
    assert store.sql("SELECT COUNT(*) FROM yingke_snapshots WHERE code = ?", CODE)[0][0] == (
        new.taken
    )


def test_migrate_empties_and_rekeys_a_table_of_pickles(store: Store, tmp_path: Path) -> None:
    """A table from before ADR 0068 (keyed by stream and version, pickled states) loses
    its rows, unread, and gets the key that lets releases coexist."""
    client_id, _, instants = _long_stream(store)
    app = store.container
    full = Clients(app.uow, app.clock, app.keyer, app.vault, FullHistory(app.uow))
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Touch(marker))
    store.sql("DROP TABLE yingke_snapshots")
    uuid_type = "TEXT" if store.backend == "sqlite" else "uuid"
    store.sql(
        f"CREATE TABLE yingke_snapshots (originator_id {uuid_type} NOT NULL, "
        "originator_version bigint NOT NULL, last_at bigint NOT NULL, head_hash bytea NOT NULL, "
        "code text NOT NULL, state bytea NOT NULL, mac bytea NOT NULL, "
        "PRIMARY KEY (originator_id, originator_version))".replace(
            "bytea", "BLOB" if store.backend == "sqlite" else "bytea"
        )
    )
    store.sql(
        "INSERT INTO yingke_snapshots VALUES (?, ?, ?, ?, ?, ?, ?)",
        store.stream_param(client_id),
        EVERY,
        0,
        b"h" * 32,
        "pre-0068-release",
        payload,
        b"m" * 32,
    )
    assert migrate(app.store.recorder) == 1
    assert migrate(app.store.recorder) == 0
    assert store.sql("SELECT COUNT(*) FROM yingke_snapshots")[0][0] == 0

    key = snapshot_key(app.keyer.digest("yingke-snapshots"))
    for code in ("the-release-before", CODE):  # both fit at the same versions now
        snapshots = Snapshots(app.uow, key, interval=EVERY, code=code)
        clients = Clients(app.uow, app.clock, app.keyer, app.vault, snapshots)
        assert _answers(clients, client_id, instants) == _answers(full, client_id, instants)
        assert snapshots.taken > 0 and snapshots.failures == 0
    assert not marker.exists()
