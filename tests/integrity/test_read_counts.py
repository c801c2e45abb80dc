"""Reads of a long stream count their statements (deterministic, unlike timings): the
access check's fold is one statement that also gives the head's chain hash, and the
ownership as of an earlier instant one more, with the event that decided it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from api.integrity import integrity
from api.routers.workday import Buyers
from domain.services.clients import Clients, FullHistory
from tests.integrity.conftest import Store
from tests.integrity.test_snapshots import EVERY, _long_stream, _snapshots
from tests.support import file_report, register_consultant, register_visit, statements


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


def test_my_day_and_the_inbox_read_their_buyers_together(store: Store) -> None:
    """The buyers a page names are read in a fixed number of statements, not each
    stream once for its state and again for its name (N+1); the names are the same."""
    app = store.container
    consultant = register_consultant(app, "proj-a")
    ids = []
    for n in range(6):
        phone = f"1390000{n:04d}"
        file_report(app, "proj-a", "ch-1", phone, name=f"买家{n}")
        visited = register_visit(app, "proj-a", phone, consultant, "ch-1", name=f"买家{n}")
        ids.append(visited["client_id"])
    rows = [{"client_id": i} for i in ids] + [{"client_id": None}]
    with statements() as two:
        few = Buyers(app, rows[:2])
    with statements() as six:
        many = Buyers(app, rows)
    assert len(two) == len(six) <= 3, six  # SET TRANSACTION, the events, their chain
    calls: list[object] = []
    real_events, real_find = app.uow.events, app.uow.find

    def counted(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            calls.append(args)
            return real(*args)

        return call

    setattr(app.uow, "events", counted(real_events))  # noqa: B010
    setattr(app.uow, "find", counted(real_find))  # noqa: B010
    clients = {i: many.client(i) for i in ids}
    names = {i: many.name(c) for i, c in clients.items() if c is not None}
    assert few.client(ids[3]) is None and many.client(None) is None
    assert calls == []  # no stream read again, one by one
    delattr(app.uow, "events")
    delattr(app.uow, "find")
    for i, client in clients.items():
        assert client is not None and vars(client) == vars(app.clients.client(uuid.UUID(i)))
    assert names == {i: app.clients.buyer_name(app.clients.client(uuid.UUID(i))) for i in ids}
    assert set(names.values()) == {f"买家{n}" for n in range(6)}
