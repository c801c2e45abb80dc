"""Reads of a long stream count their statements (deterministic, unlike timings): the
access check's fold is one statement that also gives the head's chain hash, and the
ownership as of an earlier instant one more, with the event that decided it."""

from __future__ import annotations

import uuid

from api.integrity import integrity
from domain.services.clients import Clients, FullHistory
from tests.integrity.conftest import Store
from tests.integrity.test_snapshots import EVERY, _long_stream, _snapshots
from tests.support import file_report, statements


def test_ownership_as_of_reads_one_statement_beyond_the_access_check(store: Store) -> None:
    client_id, _, instants = _long_stream(store)
    app = store.container
    full = Clients(app.uow, app.clock, app.keyer, app.vault, FullHistory(app.uow))
    fast = Clients(app.uow, app.clock, app.keyer, app.vault, _snapshots(store))
    assert fast.loaded(client_id) is not None  # takes the snapshots
    assert fast.loaded(client_id) is not None  # re-checks the events under them, once
    version = app.clients.client(client_id).version
    assert version > 4 * EVERY
    for at in instants:
        with statements() as check:
            loaded = fast.loaded(client_id)
        assert loaded is not None and loaded.base > 0
        assert len(check) == 1, check
        assert loaded.head is not None
        assert loaded.head.hex() == integrity(app, client_id)["head_hash"]
        with statements() as route:
            answer = fast.ownership_read(client_id, at, loaded=loaded)[1]
        assert answer == full.ownership_read(client_id, at)[1]
        # Before the visit the report decided it (read with the fold from the start);
        # after, the visit under the snapshots: fetched with the fold, or alone for "now".
        assert len(route) == 1, (at, route)


def test_one_event_under_a_snapshot_is_read_with_its_link_only(store: Store) -> None:
    client_id, _, _ = _long_stream(store)
    app = store.container
    snapshots = _snapshots(store)
    Clients(app.uow, app.clock, app.keyer, app.vault, snapshots).loaded(client_id)
    expected = list(app.uow.events(client_id))[2]
    with statements() as sent:
        found = snapshots.event(client_id, 3)
    assert len(sent) == 1
    assert found is not None and vars(found) == vars(expected)
    assert snapshots.event(uuid.uuid4(), 3) is None


def test_the_whole_stream_and_its_head_are_one_statement(store: Store) -> None:
    """``GET …/history`` of a stream longer than a snapshot's interval reads it whole once
    after the access check (before: again through select_events, then the head's hash
    in a transaction of its own); a shorter one is served by the check's own read."""
    client_id, _, _ = _long_stream(store)
    app = store.container
    fast = Clients(app.uow, app.clock, app.keyer, app.vault, _snapshots(store))
    fast.loaded(client_id)
    with statements() as sent:
        whole = fast.whole(client_id)
    assert len(sent) == 1, sent
    assert whole.base == 0 and whole.head is not None
    assert [vars(e) for e in whole.events] == [vars(e) for e in app.uow.events(client_id)]
    assert whole.head.hex() == integrity(app, client_id)["head_hash"]
    assert vars(whole.client) == vars(app.clients.client(client_id))

    short = uuid.UUID(file_report(app, "proj-a", "ch-2", "13900001111")["client_id"])
    loaded = fast.loaded(short)
    assert loaded is not None and loaded.base == 0
    assert [vars(e) for e in loaded.events] == [vars(e) for e in app.uow.events(short)]
    assert loaded.head is not None and loaded.head.hex() == integrity(app, short)["head_hash"]
