"""The store-ceiling bench writes what a first report writes (ADR 0075).

``bench.store_ceiling`` and ``bench.ceiling_app`` claim to be the most any application
keeping Yingke's store could do, so they must store the same rows a report stores: the
same events (topics, two streams), one chain row each, one subject key. If a report
starts writing more or fewer rows, this fails and the ceiling has to follow.
"""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest

from bench.store_ceiling import (
    EVENTS_TABLE,
    install_append_function,
    report_rows,
    write_locked,
    write_one_trip,
)
from bench.store_ceiling import statements as ceiling_statements
from tests.support import file_report
from yingke.bootstrap import Container, conninfo
from yingke.chain import CHAIN_TABLE, GENESIS, event_hash, log_hash
from yingke.settings import Settings
from yingke.vault import TABLE as KEYS_TABLE

pytestmark = pytest.mark.postgres

TABLES = (EVENTS_TABLE, CHAIN_TABLE, KEYS_TABLE)


def counts(settings: Settings) -> dict[str, int]:
    with psycopg.connect(conninfo(settings)) as conn:
        found: dict[str, int] = {}
        for table in TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            found[table] = int(row[0])
        return found


def topics_after(settings: Settings, position: int) -> tuple[Counter[str], int]:
    """The topics stored past ``position``, and how many streams they are on."""
    with psycopg.connect(conninfo(settings)) as conn:
        rows = conn.execute(
            f"SELECT topic, originator_id FROM {EVENTS_TABLE} WHERE notification_id > %s",
            (position,),
        ).fetchall()
    return Counter(str(r[0]) for r in rows), len({r[1] for r in rows})


def head(settings: Settings) -> int:
    with psycopg.connect(conninfo(settings)) as conn:
        row = conn.execute(
            f"SELECT COALESCE(MAX(notification_id), 0) FROM {EVENTS_TABLE}"
        ).fetchone()
    assert row is not None
    return int(row[0])


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {t: after[t] - before[t] for t in TABLES}


def test_the_ceiling_stores_the_rows_a_first_report_stores(
    own_pg_app: Container, own_pg: Settings
) -> None:
    before, mark = counts(own_pg), head(own_pg)
    file_report(own_pg_app, "proj-ceil", "ch-1", "13800002222")
    by_app, app_topics = delta(before, counts(own_pg)), topics_after(own_pg, mark)

    before, mark = counts(own_pg), head(own_pg)
    rows = report_rows(own_pg_app.keyer, "proj-ceil", "13800003333")
    with psycopg.connect(conninfo(own_pg)) as conn:
        write_locked(conn, [rows], ceiling_statements())
    assert not rows.refused
    by_ceiling, ceiling_topics = delta(before, counts(own_pg)), topics_after(own_pg, mark)

    assert by_ceiling == by_app == {EVENTS_TABLE: 4, CHAIN_TABLE: 4, KEYS_TABLE: 1}
    assert ceiling_topics == app_topics


def test_a_second_report_on_the_same_buyer_is_refused_and_writes_nothing(
    own_pg_app: Container, own_pg: Settings
) -> None:
    statements = ceiling_statements()
    with psycopg.connect(conninfo(own_pg)) as conn:
        first = report_rows(own_pg_app.keyer, "proj-ceil", "13800004444")
        write_locked(conn, [first], statements)
        before = counts(own_pg)
        # The same buyer written as "+86 138-0000-4444" by another channel, and a new
        # buyer in the same batch: only the new buyer's rows are stored.
        again = report_rows(own_pg_app.keyer, "proj-ceil", "+86 138-0000-4444")
        other = report_rows(own_pg_app.keyer, "proj-ceil", "13800005555")
        write_locked(conn, [again, other], statements)
    assert (first.refused, again.refused, other.refused) == (False, True, False)
    assert delta(before, counts(own_pg)) == {EVENTS_TABLE: 4, CHAIN_TABLE: 4, KEYS_TABLE: 1}


def test_the_one_trip_writer_chains_as_the_store_does(
    own_pg_app: Container, own_pg: Settings
) -> None:
    """The SQL function hashes with ``yingke.chain``'s canonical encoding, so its figure
    includes the chain the store really keeps; and it refuses a colliding report whole."""
    statements = ceiling_statements()
    with psycopg.connect(conninfo(own_pg)) as conn:
        install_append_function(conn)
        first = [report_rows(own_pg_app.keyer, "proj-trip", f"1380000{n}000") for n in range(3)]
        write_one_trip(conn, first, statements)
        again = report_rows(own_pg_app.keyer, "proj-trip", "+86 138-0000-1000")
        later = report_rows(own_pg_app.keyer, "proj-trip", "13800009000")
        write_one_trip(conn, [again, later], statements)
        rows = conn.execute(
            f"SELECT e.originator_id, e.originator_version, e.notification_id, e.topic, "
            f"e.state, c.prev_hash, c.hash, c.log_hash FROM {EVENTS_TABLE} e "
            f"JOIN {CHAIN_TABLE} c ON c.position = e.notification_id "
            "ORDER BY e.notification_id"
        ).fetchall()
    assert [r.refused for r in first] == [False, False, False]
    assert (again.refused, later.refused) == (True, False)
    assert len(rows) == 16 and all(len(r.ids) == 4 for r in [*first, later])
    prev_log = GENESIS
    for stream, version, position, topic, state, prev, own, logged in rows:
        assert own == event_hash(stream, version, position, topic, bytes(state), bytes(prev))
        prev_log = log_hash(prev_log, position, bytes(own))
        assert bytes(logged) == prev_log
