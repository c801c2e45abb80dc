"""Snapshots fold long streams faster without weakening the chain (ADR 0060): answers
equal a full replay, an edited snapshot is refused, and an event edited under a
snapshot is still caught."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from domain.services.clients import Clients, FullHistory
from tests.integrity.conftest import Store
from tests.support import ctx, file_report, register_consultant, register_visit
from yingke.chain import ChainBroken, integrity_failures
from yingke.snapshots import CODE, Snapshots, snapshot_key

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


def test_snapshots_of_other_code_are_ignored_then_replaced(store: Store) -> None:
    """A release that changes the domain code folds from the events and takes its own
    snapshots in place of the old ones (they share versions)."""
    client_id, _, instants = _long_stream(store)
    app = store.container
    full = Clients(app.uow, app.clock, app.keyer, app.vault, FullHistory(app.uow))
    Clients(app.uow, app.clock, app.keyer, app.vault, _snapshots(store)).loaded(client_id)
    taken = store.sql("SELECT COUNT(*) FROM yingke_snapshots")[0][0]
    store.sql("UPDATE yingke_snapshots SET code = ?", "an-earlier-release")

    snapshots = _snapshots(store)
    clients = Clients(app.uow, app.clock, app.keyer, app.vault, snapshots)
    assert clients.ownership_as_of(client_id, instants[-2]) == full.ownership_as_of(
        client_id, instants[-2]
    )
    assert snapshots.used == 0
    assert snapshots.taken > 0
    clients.loaded(client_id)
    assert snapshots.used == 1
    assert snapshots.taken == taken  # every version replaced once, none added
    assert store.sql("SELECT COUNT(*) FROM yingke_snapshots WHERE code = ?", CODE)[0][0] == taken
