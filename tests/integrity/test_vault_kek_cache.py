"""The vault keeps the current KEK in memory while the key directory is unchanged; a
rotation is seen by the next new key, and a stale copy never costs a key."""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from yingke import vault as vault_module
from yingke.keys import KeyDir, _write_secret
from yingke.vault import NewKey, SQLiteKeyStore, Vault


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    store = SQLiteKeyStore(tmp_path / "keys.sqlite")
    store.create_table()
    yield Vault(store, b"s" * 32, KeyDir(tmp_path / "keys"))
    store.close()


def settle(keys: KeyDir) -> None:
    """Date the directory's last change back a minute, as if it happened long before:
    the vault then trusts a listing of it (a change in the same tick is not trusted)."""
    old = os.stat(keys.path).st_mtime_ns - 60_000_000_000
    os.utime(keys.path, ns=(old, old))


def stored_epoch(vault: Vault, subject: uuid.UUID) -> int:
    wrapped = vault._store.get(str(subject))
    assert wrapped is not None
    return vault.epoch_of(wrapped)


def test_a_new_key_after_a_rotation_is_wrapped_by_the_new_epoch(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = vault._keys
    keys.current_epoch()
    settle(keys)
    first = uuid.uuid4()
    vault.seal(first, {"name": "张三"})  # the current KEK is now held in memory
    rotated = vault.rotate()
    rewraps: list[str] = []
    original = vault._store.replace

    def replace(subject: str, old: bytes, new: bytes) -> bool:
        rewraps.append(subject)
        return original(subject, old, new)

    monkeypatch.setattr(vault._store, "replace", replace)
    second = uuid.uuid4()
    token = vault.seal(second, {"name": "李四"})
    # Wrapped by the new epoch from the start, not re-wrapped after the fact.
    assert rewraps == []
    assert stored_epoch(vault, second) == rotated == keys.epochs()[-1]
    assert vault.open(second, token) == {"name": "李四"}


def test_the_key_directory_is_listed_once_for_many_new_keys(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vault_module, "KEK_CACHE_SECONDS", 3600.0)
    keys = vault._keys
    keys.current_epoch()
    settle(keys)
    listings: list[int] = []
    original = keys.current_epoch

    def counted() -> int:
        listings.append(1)
        return original()

    monkeypatch.setattr(keys, "current_epoch", counted)
    for _ in range(20):
        vault.seal(uuid.uuid4(), {"name": "王五"})
    assert len(listings) == 1


def test_a_stale_kek_in_memory_costs_a_rewrap_not_a_key(vault: Vault) -> None:
    """A rotation the directory's mtime does not show (another host's clock, a change in
    the same tick): the new key is wrapped by the destroyed epoch, and re-wrapped by the
    check after its insert."""
    keys = vault._keys
    old = keys.current_epoch()
    settle(keys)
    vault.seal(uuid.uuid4(), {"name": "张三"})
    stamp = os.stat(keys.path).st_mtime_ns
    new = keys.new_epoch()
    keys.destroy_epoch(old)
    os.utime(keys.path, ns=(stamp, stamp))  # the change goes unseen
    subject = uuid.uuid4()
    token = vault.seal(subject, {"name": "赵六"})
    assert stored_epoch(vault, subject) == new
    assert vault.open(subject, token) == {"name": "赵六"}


def test_a_deferred_key_wrapped_by_a_stale_kek_is_rewrapped_after_its_save(
    vault: Vault, monkeypatch: Any
) -> None:
    keys = vault._keys
    old = keys.current_epoch()
    settle(keys)
    vault.seal(uuid.uuid4(), {"name": "张三"})
    stamp = os.stat(keys.path).st_mtime_ns
    new = keys.new_epoch()
    keys.destroy_epoch(old)
    os.utime(keys.path, ns=(stamp, stamp))
    vault.defer_new_keys = True
    subject = uuid.uuid4()
    with vault.unit():
        token = vault.seal(subject, {"name": "赵六"})
        taken = vault.take_new_keys()
    assert [vault.epoch_of(k.wrapped) for k in taken] == [old]
    # What the batch does: insert, commit, then the check.
    vault._store.put_if_absent(taken[0].subject, taken[0].wrapped)
    vault.keys_stored(taken)
    assert stored_epoch(vault, subject) == new
    assert vault.open(subject, token) == {"name": "赵六"}


def deferred_key(vault: Vault, subject: uuid.UUID, name: str) -> tuple[str, list[NewKey]]:
    vault.defer_new_keys = True
    with vault.unit():
        token = vault.seal(subject, {"name": name})
        taken = vault.take_new_keys()
    return token, taken


def test_a_key_stored_while_another_process_rotates_is_rewrapped(
    vault: Vault, tmp_path: Path
) -> None:
    """Another process (its own vault, its own KEK in memory) rotates between this
    process wrapping a new key and its save committing: the rotation's scan missed the
    row, so this process re-wraps it after the commit."""
    keys = vault._keys
    keys.current_epoch()
    settle(keys)
    subject = uuid.uuid4()
    token, taken = deferred_key(vault, subject, "孙七")
    other = Vault(vault._store, b"s" * 32, KeyDir(keys.path))
    rotated = other.rotate()
    assert [vault.epoch_of(k.wrapped) for k in taken] == [rotated - 1]
    vault._store.put_if_absent(taken[0].subject, taken[0].wrapped)
    vault.keys_stored(taken)
    assert stored_epoch(vault, subject) == rotated
    assert vault.open(subject, token) == {"name": "孙七"}
    assert other.open(subject, token) == {"name": "孙七"}


def test_a_key_whose_epoch_file_was_replaced_before_its_save_committed_is_rewrapped(
    vault: Vault,
) -> None:
    """The epoch's file is still there after the commit, with a valid digest, but it is
    not the file the key was wrapped with: two processes created the same epoch number
    at once (or a backup was restored over it). Alive by name is not enough: the key
    would stay wrapped by material that no longer exists."""
    keys = vault._keys
    epoch = keys.current_epoch()
    settle(keys)
    subject = uuid.uuid4()
    token, taken = deferred_key(vault, subject, "周八")
    material = secrets.token_bytes(32)
    _write_secret(
        keys.path / f"kek-{epoch:06d}.key", material + hashlib.sha256(material).digest()[:16]
    )
    vault._store.put_if_absent(taken[0].subject, taken[0].wrapped)
    vault.keys_stored(taken)
    assert vault.open(subject, token) == {"name": "周八"}


def test_two_processes_creating_the_same_epoch_keep_the_first_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rotations in two processes list the same newest epoch and both create the next
    one. The second must not replace the first's file: keys the first re-wrapped under it
    would be wrapped by material that no longer exists."""
    first, second = KeyDir(tmp_path / "keys"), KeyDir(tmp_path / "keys")
    epoch = first.current_epoch()
    real = secrets.token_bytes
    theirs: list[bytes] = []

    def token_bytes(n: int) -> bytes:
        # The first process creates the epoch just after the second looked for its file.
        monkeypatch.setattr(secrets, "token_bytes", real)
        assert first.new_epoch() == epoch + 1
        theirs.append(first.kek(epoch + 1) or b"")
        return real(n)

    monkeypatch.setattr(secrets, "token_bytes", token_bytes)
    assert second.new_epoch() == epoch + 1
    assert theirs and len(theirs[0]) == 32
    assert second.kek(epoch + 1) == first.kek(epoch + 1) == theirs[0]
    assert not [p.name for p in (tmp_path / "keys").iterdir() if ".tmp-" in p.name]


def test_a_key_directory_without_hard_links_still_gets_new_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some mounts (FUSE secret stores) refuse hard links: a rotation, and so an erasure,
    must still work there, with the rename as before."""

    def no_link(src: Any, dst: Any) -> None:
        raise PermissionError(errno.EPERM, "hard links not supported", str(dst))

    monkeypatch.setattr(os, "link", no_link)
    keys = KeyDir(tmp_path / "keys")
    first = keys.current_epoch()
    assert keys.new_epoch() == first + 1
    assert keys.kek(first + 1) is not None
    assert not [p.name for p in keys.path.iterdir() if ".tmp-" in p.name]


def test_an_import_that_lists_an_epoch_a_rotation_just_destroyed_uses_the_next(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import (``seal_new``) lists the newest epoch, and a rotation in another process
    destroys it before the file is read: the import lists again instead of failing."""
    keys = vault._keys
    old = keys.current_epoch()
    new = keys.new_epoch()
    keys.destroy_epoch(old)
    stale = [old]
    original = keys.current_epoch
    monkeypatch.setattr(keys, "current_epoch", lambda: stale.pop() if stale else original())
    subject = uuid.uuid4()
    [token] = vault.seal_new([(subject, {"name": "吴九"})])
    assert stale == []
    assert stored_epoch(vault, subject) == new
    assert vault.open(subject, token) == {"name": "吴九"}
