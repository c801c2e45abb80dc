"""Arrays encoded by yingke.pgarrays read back on the server as psycopg's own would."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from yingke import pgarrays

pytestmark = pytest.mark.postgres


def test_each_array_kind_reads_back_as_it_was_given(pg_url: str) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    numbers = [1, -2, 2**62, 0]
    texts = ["bench.synthetic:Event", "客户 é", ""]
    blobs = [b"", b"\x00\xff" * 40]
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT %b::uuid[], %b::bigint[], %b::text[], %b::bytea[], "
            "%s::uuid[], %s::bigint[], %s::text[], %s::bytea[]",
            (
                pgarrays.uuids(ids),
                pgarrays.int8s(numbers),
                pgarrays.texts(texts),
                pgarrays.byteas(blobs),
                pgarrays.uuids([]),
                pgarrays.int8s([]),
                pgarrays.texts([]),
                pgarrays.byteas([]),
            ),
        ).fetchone()
    assert row == (ids, numbers, texts, blobs, [], [], [], [])


def test_an_array_of_another_kind_is_refused_not_misread(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.CannotCoerce):
        conn.execute("SELECT %b::uuid[]", (pgarrays.int8s([1, 2]),))


def test_unnest_of_several_arrays_pairs_their_elements_in_order(pg_url: str) -> None:
    ids = [uuid.uuid4() for _ in range(300)]
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[])",
            (
                pgarrays.uuids(ids),
                pgarrays.int8s(list(range(300))),
                pgarrays.texts([str(i) for i in ids]),
            ),
        ).fetchall()
    assert rows == [(i, n, str(i)) for n, i in enumerate(ids)]
