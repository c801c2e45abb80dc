"""The forensic attack on an erasure: every old copy of the wrapped key, every KEK on the
machine, and nothing comes back. Also: rotation with writers running, the delayed and
batched retirement of the scaled topology."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from functools import partial
from pathlib import Path

import psycopg
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from api import bodies
from api.bodies import answer
from tests.integrity.conftest import Store
from tests.support import (
    ctx,
    file_report,
    register_consultant,
    register_visit,
    wait_until,
)
from yingke.bootstrap import build, migrate
from yingke.chain import verify_log
from yingke.cli import main
from yingke.vault import MAGIC, TABLE, Vault

NAME, NOTE, SUMMARY = "欧阳娜娜", "wants a south-facing unit", "called, likes building 3"


def _buyer(store: Store, phone: str) -> uuid.UUID:
    app = store.container
    consultant = register_consultant(app, "proj-e")
    result = app.reports.file_report(
        ctx().answering(answer(201, bodies.filed_report)),
        project_id="proj-e",
        partner_id="ch-1",
        agent_id="agent-1",
        client_name=NAME,
        phone=phone,
        note=NOTE,
    )
    assert result.response is not None
    client_id = uuid.UUID(result.response.body["client_id"])
    register_visit(app, "proj-e", phone, consultant, "ch-1", name=NAME)
    app.followups.log_follow_up(ctx(), client_id, method="call", summary=SUMMARY, effective=True)
    return client_id


def _sealed_tokens(store: Store, client_id: uuid.UUID) -> list[str]:
    events = store.container.store.events.get(client_id)
    tokens = [getattr(e, "pii", None) for e in events]
    return [str(t) for t in tokens if t]


def _candidate_keks(store: Store) -> list[bytes]:
    """Every KEK an attacker on the machine could try: any 32-byte file under the data
    dir and the key dir, every file's bytes, and the key derived from the env secret."""
    found: list[bytes] = []
    for root in {store.settings.data_dir, store.settings.keys_path}:
        for path in Path(root).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                found += [data, data.strip(), data[:32], data[-32:]]
    secret = store.settings.secret
    found.append(
        HKDF(algorithm=hashes.SHA256(), length=32, salt=b"yingke-vault", info=b"master-key").derive(
            secret
        )
    )
    found.append(secret[:32])
    return [k for k in found if len(k) == 32]


def _raw_bytes(store: Store) -> bytes:
    """The key table as it lies on disk: SQLite main + WAL files, or every PostgreSQL page."""
    if store.backend == "sqlite":
        base = store.settings.sqlite_path
        return b"".join(
            Path(str(base) + suffix).read_bytes()
            for suffix in ("", "-wal", "-shm")
            if Path(str(base) + suffix).exists()
        )
    url = store.settings.database_url
    assert url is not None
    with psycopg.connect(url, autocommit=True, user="postgres") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        (size,) = conn.execute("SELECT pg_relation_size(%s)", (TABLE,)).fetchone()  # type: ignore[misc]
        pages = [
            bytes(conn.execute("SELECT get_raw_page(%s, %s)", (TABLE, n)).fetchone()[0])  # type: ignore[index]
            for n in range(size // 8192)
        ]
    return b"".join(pages)


def _recoverable(blob: bytes, subject: str, keks: list[bytes], old_wrapped: bytes) -> list[bytes]:
    """Try every wrapped-key shape found in ``blob`` with every KEK; return what opens."""
    candidates = [blob[i : i + 68] for i in range(len(blob)) if blob.startswith(MAGIC, i)]
    start = blob.find(old_wrapped)
    while start != -1:
        candidates.append(old_wrapped)
        start = blob.find(old_wrapped, start + 1)
    opened = []
    for wrapped in candidates:
        for kek in keks:
            aead = AESGCM(kek)
            for nonce, body, aad in (
                (wrapped[8:20], wrapped[20:], wrapped[:8] + subject.encode()),
                (wrapped[:12], wrapped[12:], subject.encode()),
            ):
                with contextlib.suppress(InvalidTag, ValueError):
                    opened.append(aead.decrypt(nonce, body, aad))
    return opened


def _open_with(raw_key: bytes, subject: uuid.UUID, token: str) -> dict[str, str] | None:
    sealed = base64.b64decode(token[3:])
    try:
        opened: dict[str, str] = json.loads(
            AESGCM(raw_key).decrypt(sealed[:12], sealed[12:], subject.bytes)
        )
    except (InvalidTag, ValueError):
        return None
    return opened


def _wrapped(store: Store, subject: uuid.UUID) -> bytes:
    row = store.sql(f"SELECT wrapped FROM {TABLE} WHERE subject = ?", str(subject))
    return bytes(row[0][0])


def test_after_an_erasure_the_forensic_attack_recovers_nothing(store: Store) -> None:
    erased = _buyer(store, "13811112222")
    kept = _buyer(store, "13933334444")
    app = store.container
    old_wrapped = _wrapped(store, erased)
    tokens = _sealed_tokens(store, erased)
    assert len(tokens) >= 2
    # Before the erasure the attack works: the wrapped key is on disk and a KEK opens it.
    assert _recoverable(_raw_bytes(store), str(erased), _candidate_keks(store), old_wrapped)

    app.clients.erase_personal_data(ctx(), erased)

    keks = _candidate_keks(store)
    recovered = _recoverable(_raw_bytes(store), str(erased), keks, old_wrapped)
    assert recovered == []
    for raw_key in recovered:  # pragma: no cover - documents what the attack would do
        assert all(_open_with(raw_key, erased, t) is None for t in tokens)
    # The erased buyer reads as erased; the other buyer's data survived the re-wrap.
    assert any(
        e.get("data", {}).get("personal_data") == "erased" for e in app.clients.history(erased)
    )
    assert app.vault.open(kept, _sealed_tokens(store, kept)[0]) is not None


def test_rotation_with_writers_running_loses_no_key(store: Store) -> None:
    app = store.container
    other = build(store.settings)  # a second process's view of the same store and keys
    try:
        vault = other.vault
        assert isinstance(vault, Vault)
        stop = threading.Event()
        filed: list[uuid.UUID] = []

        failed: list[BaseException] = []

        def writer() -> None:
            n = 0
            try:
                while not stop.is_set():
                    body = file_report(app, "proj-r", "ch-1", f"1370000{n:04d}")
                    filed.append(uuid.UUID(body["client_id"]))
                    n += 1
            except BaseException as exc:  # a report refused mid-rotation is the bug
                failed.append(exc)

        def filed_beyond(count: int) -> bool:
            if failed:
                raise AssertionError(f"a report failed during rotation: {failed[0]!r}")
            return len(filed) >= count

        thread = threading.Thread(target=writer)
        thread.start()
        epochs = []
        try:
            for _ in range(3):
                # Reports land between rotations, counted rather than timed.
                wait_until(partial(filed_beyond, len(filed) + 2), 120, "two more reports")
                epochs.append(vault.rotate())
        finally:
            stop.set()
            thread.join()
        assert failed == [], "a report failed during rotation"
        assert store.container.key_dir.epochs() == [epochs[-1]]
        assert len(filed) > 3
        for client_id in filed:
            token = _sealed_tokens(store, client_id)[0]
            assert app.vault.open(client_id, token) is not None
        verify_log(app.store.recorder, store.container.key_dir)
    finally:
        other.close()


def test_the_scaled_topology_retires_epochs_after_the_delay_in_one_batch(store: Store) -> None:
    app = store.container
    vault = app.vault
    assert isinstance(vault, Vault)
    keys = store.container.key_dir
    first, second = _buyer(store, "13855556666"), _buyer(store, "13877778888")
    vault.retire_delay = 3600
    before = keys.epochs()
    app.clients.erase_personal_data(ctx(), first)
    app.clients.erase_personal_data(ctx(), second)
    assert keys.epochs() == before  # nothing retired yet: both erasures wait for one batch
    due = keys.retirement_due()
    assert due is not None and due > time.time() + 3000
    assert vault.sweep() is False
    keys.schedule_retirement(time.time() - 1)  # the hour has passed
    assert vault.sweep() is True
    assert keys.epochs() == [max(before) + 1]
    assert keys.retirement_due() is None


def test_migrate_moves_keys_wrapped_before_epochs_and_leaves_no_old_copy(store: Store) -> None:
    app = store.container
    client_id = _buyer(store, "13866667777")
    tokens = _sealed_tokens(store, client_id)
    vault = app.vault
    assert isinstance(vault, Vault)
    # Put the key back the way the store held it before epochs: wrapped by YINGKE_SECRET.
    name = str(client_id)
    raw = vault._unwrap(name, _wrapped(store, client_id))
    legacy_kek = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"yingke-vault", info=b"master-key"
    ).derive(store.settings.secret)
    nonce = b"\x07" * 12
    legacy = nonce + AESGCM(legacy_kek).encrypt(nonce, raw, name.encode())
    store.sql(f"UPDATE {TABLE} SET wrapped = ? WHERE subject = ?", legacy, name)
    assert vault.open(client_id, tokens[0]) is not None  # epoch 0 still reads

    migrate(store.settings)

    assert vault.epoch_of(_wrapped(store, client_id)) >= 1
    assert vault.open(client_id, tokens[0]) is not None
    assert legacy not in _raw_bytes(store)


def test_the_keys_command_rotates_beside_a_running_service(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = store.container
    client_id = _buyer(store, "13822223333")
    tokens = _sealed_tokens(store, client_id)
    env = {"YINGKE_DATA_DIR": str(store.settings.data_dir)}
    if store.settings.database_url:
        env |= {
            "YINGKE_DATABASE_URL": store.settings.database_url,
            "YINGKE_SECRET": store.settings.secret.decode(),
            "YINGKE_ADMIN_KEY": store.settings.admin_key,
        }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    epochs, signing = store.container.key_dir.epochs(), store.container.key_dir.signing_keys()
    assert main(["keys", "rotate", "--signing"]) == 0
    assert store.container.key_dir.epochs() == [max(epochs) + 1]
    assert len(store.container.key_dir.signing_keys()) == len(signing) + 1
    # The running container reads the re-wrapped key and keeps writing and verifying.
    assert app.vault.open(client_id, tokens[0]) is not None
    file_report(app, "proj-e", "ch-9", "13544445555")
    verify_log(app.store.recorder, store.container.key_dir)
