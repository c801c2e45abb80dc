"""Editing, deleting or reordering a stored event is caught on load and by `verify`."""

from __future__ import annotations

import uuid

import pytest

from domain.values import Actor
from tests.integrity.conftest import Store
from tests.support import ctx, file_report, register_consultant, register_visit
from yingke.chain import (
    ChainBroken,
    Chained,
    backfill,
    chain_hash,
    integrity_failures,
    verify_log,
)
from yingke.cli import main


def _client_with_owner(store: Store) -> tuple[uuid.UUID, str]:
    app = store.container
    consultant = register_consultant(app, "proj-a")
    body = file_report(app, "proj-a", "ch-1", "13812345678")
    register_visit(app, "proj-a", "13812345678", consultant, "ch-1")
    file_report(app, "proj-a", "ch-2", "13900001111")
    return uuid.UUID(body["client_id"]), consultant


def _rows(store: Store, stream: uuid.UUID) -> list[tuple[int, int, str]]:
    col = store.position_column
    return [
        (int(r[0]), int(r[1]), str(r[2]))
        for r in store.sql(
            f"SELECT {col}, originator_version, topic FROM {store.events} "
            "WHERE originator_id = ? ORDER BY originator_version",
            store.stream_param(stream),
        )
    ]


def test_an_untouched_store_verifies_and_reports_its_head(store: Store) -> None:
    client_id, _ = _client_with_owner(store)
    app = store.container
    report = verify_log(app.store.recorder, store.container.key_dir)
    assert report.events == app.position()
    assert report.checkpoints >= 1
    assert len(app.clients.history(client_id)) == len(_rows(store, client_id))


@pytest.mark.parametrize("tamper", ["update", "delete", "swap"])
def test_tampering_is_caught_on_load_and_by_verify(store: Store, tamper: str) -> None:
    client_id, consultant = _client_with_owner(store)
    rows = _rows(store, client_id)
    awarded = next(r for r in rows if r[2].endswith("OwnershipAwarded"))
    col = store.position_column
    where = "WHERE originator_id = ? AND originator_version = ?"
    stream = store.stream_param(client_id)
    if tamper == "update":
        (state,) = store.sql(f"SELECT state FROM {store.events} {where}", stream, awarded[1])[0]
        forged = bytes(state).replace(consultant.encode(), b"cons-forger")
        assert forged != bytes(state)
        store.sql(f"UPDATE {store.events} SET state = ? {where}", forged, stream, awarded[1])
    elif tamper == "delete":
        store.sql(f"DELETE FROM {store.events} {where}", stream, rows[1][1])
    else:
        first, second = rows[1][0], rows[2][0]
        store.sql(f"UPDATE {store.events} SET {col} = -1 WHERE {col} = ?", first)
        store.sql(f"UPDATE {store.events} SET {col} = ? WHERE {col} = ?", first, second)
        store.sql(f"UPDATE {store.events} SET {col} = ? WHERE {col} = -1", second)

    before = integrity_failures()
    with pytest.raises(ChainBroken) as on_load:
        store.container.clients.history(client_id)
    assert on_load.value.stream == str(client_id)
    assert integrity_failures() == before + 1

    with pytest.raises(ChainBroken) as verified:
        verify_log(store.container.store.recorder, store.container.key_dir)
    assert verified.value.stream == str(client_id)
    assert verified.value.position is not None


def test_a_full_rewrite_of_the_hashes_is_caught_by_the_signed_checkpoint(store: Store) -> None:
    """Someone who recomputes every hash still cannot forge the checkpoint signature."""
    client_id, consultant = _client_with_owner(store)
    awarded = next(r for r in _rows(store, client_id) if r[2].endswith("OwnershipAwarded"))
    stream = store.stream_param(client_id)
    where = "WHERE originator_id = ? AND originator_version = ?"
    (state,) = store.sql(f"SELECT state FROM {store.events} {where}", stream, awarded[1])[0]
    store.sql(
        f"UPDATE {store.events} SET state = ? {where}",
        bytes(state).replace(consultant.encode(), b"cons-forger"),
        stream,
        awarded[1],
    )
    # Re-chain everything from the forged event on, as an attacker with SQL access could.
    # The attacker has no signing key: the re-chaining signs nothing.
    recorder = store.container.store.recorder
    store.sql("DELETE FROM yingke_event_chain WHERE position >= ?", awarded[0])
    signer, recorder.signer = recorder.signer, None  # type: ignore[attr-defined]
    backfill(recorder, force=True)
    recorder.signer = signer  # type: ignore[attr-defined]
    assert store.container.clients.history(client_id)  # the stream chain alone now looks fine
    with pytest.raises(ChainBroken) as verified:
        verify_log(store.container.store.recorder, store.container.key_dir)
    assert verified.value.stream == "checkpoint"


def test_migrate_never_rechains_an_event_once_the_chain_is_live(store: Store) -> None:
    """An unchained row after the upgrade is tampering, not history to backfill."""
    client_id, _ = _client_with_owner(store)
    last = _rows(store, client_id)[-1]
    store.sql("DELETE FROM yingke_event_chain WHERE position = ?", last[0])
    assert backfill(store.container.store.recorder) == 0
    with pytest.raises(ChainBroken) as verified:
        verify_log(store.container.store.recorder, store.container.key_dir)
    assert verified.value.position == last[0]


def test_migrate_chains_events_stored_before_the_chain(store: Store) -> None:
    client_id, _ = _client_with_owner(store)
    store.sql("DELETE FROM yingke_checkpoints")
    store.sql("DELETE FROM yingke_event_chain")
    with pytest.raises(ChainBroken):
        store.container.clients.history(client_id)
    assert backfill(store.container.store.recorder) == store.container.position()
    assert store.container.clients.history(client_id)
    assert verify_log(store.container.store.recorder, store.container.key_dir).checkpoints == 1


def test_the_verify_command_names_the_first_broken_event(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client_id, _ = _client_with_owner(store)
    env = {"YINGKE_DATA_DIR": str(store.settings.data_dir)}
    if store.settings.database_url:
        env |= {
            "YINGKE_DATABASE_URL": store.settings.database_url,
            "YINGKE_SECRET": store.settings.secret.decode(),
            "YINGKE_ADMIN_KEY": store.settings.admin_key,
        }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["verify"]) == 0
    assert "verified" in capsys.readouterr().out
    version = _rows(store, client_id)[1][1]
    store.sql(
        f"DELETE FROM {store.events} WHERE originator_id = ? AND originator_version = ?",
        store.stream_param(client_id),
        version,
    )
    assert main(["verify", "--from", "1"]) == 1
    out = capsys.readouterr().out
    assert f"stream {client_id}" in out and "position" in out


def test_a_save_tells_its_thread_the_chain_hashes_it_committed(store: Store) -> None:
    # Receipts sign these hashes instead of reading them back (ADR 0061).
    app = store.container
    recorder = app.store.recorder
    assert isinstance(recorder, Chained)
    first = app.reports.file_report(
        ctx(Actor("agent-ch-1", "channel_agent")),
        project_id="proj-a",
        partner_id="ch-1",
        agent_id="agent-ch-1",
        client_name="张三丰",
        phone="13812345678",
    )
    assert len(first.recorded) >= 2
    for event in first.recorded:
        told = recorder.written_hash(event.originator_id, event.originator_version)
        assert told is not None
        assert told == chain_hash(recorder, event.originator_id, event.originator_version)
    file_report(app, "proj-a", "ch-2", "13900001111")
    # Only the last save of this thread is remembered.
    earlier = first.recorded[0]
    assert recorder.written_hash(earlier.originator_id, earlier.originator_version) is None
