"""The client import reads existing buyers many streams at a time (ADR 0047): a re-run
still finds every buyer, a clash is still refused, and a forged event is still caught."""

from __future__ import annotations

import uuid

import pytest

from domain.errors import InvalidRows
from tests.integrity.conftest import Store
from tests.support import ctx, file_report, register_consultant
from yingke.chain import ChainBroken
from yingke.sheets.clients import client_rows
from yingke.sheets.reading import read_sheet


def _register(consultant: str, phones: list[str], note: str = "看过样板间") -> bytes:
    lines = ["姓名,手机,来源,置业顾问,意向等级,首次到访,最近跟进,备注"]
    lines += [
        f"客户{n},{phone},自然到访,{consultant},A类,2024/3/{n + 1},2024年4月{n + 1}日,{note}"
        for n, phone in enumerate(phones)
    ]
    return ("\n".join(lines) + "\n").encode()


def _import(store: Store, data: bytes) -> list[str]:
    report = store.container.client_import.run(ctx(), "proj-a", client_rows(read_sheet(data)))
    return [row.status for row in report.value.rows]


def test_a_rerun_finds_every_buyer_and_a_clash_is_refused(store: Store) -> None:
    app = store.container
    consultant = register_consultant(app, "proj-a")
    phones = [f"1391234{n:04d}" for n in range(7)]
    assert _import(store, _register(consultant, phones)) == ["new"] * 7
    assert _import(store, _register(consultant, phones)) == ["unchanged"] * 7

    # Same buyers, other content: each is an existing buyer, never merged.
    with pytest.raises(InvalidRows) as changed:
        _import(store, _register(consultant, phones[:2], note="改了备注"))
    assert [p[2] for p in changed.value.problems] == ["duplicate_client"] * 2

    # A buyer the project has from a report (not migrated) is a clash too.
    file_report(app, "proj-a", "ch-1", "13700001111")
    with pytest.raises(InvalidRows) as reported:
        _import(store, _register(consultant, ["13700001111"]))
    assert [p[2] for p in reported.value.problems] == ["duplicate_client"]


def test_a_forged_migrated_event_is_caught_by_the_rerun(store: Store) -> None:
    consultant = register_consultant(store.container, "proj-a")
    data = _register(consultant, ["13912340000", "13912340001"])
    assert _import(store, data) == ["new", "new"]
    client_id = store.container.keyer.client_id("proj-a", "13912340001")
    stream = store.stream_param(client_id)
    where = "WHERE originator_id = ? AND originator_version = 2"
    (state,) = store.sql(f"SELECT state FROM {store.events} {where}", stream)[0]
    forged = bytes(state).replace(b'"grade":"A"', b'"grade":"C"')
    assert forged != bytes(state)
    store.sql(f"UPDATE {store.events} SET state = ? {where}", forged, stream)

    with pytest.raises(ChainBroken) as caught:
        _import(store, data)
    assert uuid.UUID(caught.value.stream) == client_id


def test_an_erased_buyer_s_number_imports_like_a_fresh_one(store: Store) -> None:
    # Erasure means the number is not known any more: the import must neither answer
    # ``unchanged`` (the same row as before) nor ``duplicate_client`` (a buyer from a
    # report), which would tell the importer the erased buyer was here. The buyer comes
    # back on their stream (its id is the number's); a re-run is then ``unchanged``.
    app = store.container
    consultant = register_consultant(app, "proj-a")
    migrated, reported = "13912345555", "13700002222"
    assert _import(store, _register(consultant, [migrated])) == ["new"]
    file_report(app, "proj-a", "ch-1", reported)
    for phone in (migrated, reported):
        app.clients.erase_personal_data(ctx(), app.keyer.client_id("proj-a", phone))

    data = _register(consultant, [migrated, reported, "13912346666"])
    assert _import(store, data) == ["new"] * 3
    assert _import(store, data) == ["unchanged"] * 3
    with pytest.raises(InvalidRows) as changed:
        _import(store, _register(consultant, [migrated], note="改了备注"))
    assert [p[2] for p in changed.value.problems] == ["duplicate_client"]
