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

from bench.store_ceiling import EVENTS_TABLE, report_rows, write_locked
from bench.store_ceiling import statements as ceiling_statements
from tests.support import file_report
from yingke.bootstrap import Container, conninfo
from yingke.chain import CHAIN_TABLE
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
