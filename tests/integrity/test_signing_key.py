"""The receipt signing key: read once per process, and a rotation anywhere seen at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from yingke import keys
from yingke.keys import KeyDir


def test_the_signing_key_is_read_from_disk_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    KeyDir(tmp_path).new_signing_key()
    listed: list[Path] = []
    real = KeyDir.signing_keys

    def counting(self: KeyDir) -> list[keys.SigningKeyInfo]:
        listed.append(self.path)
        return real(self)

    monkeypatch.setattr(KeyDir, "signing_keys", counting)
    reader = KeyDir(tmp_path)
    first = reader.signing_key()
    assert [reader.signing_key()[0] for _ in range(5)] == [first[0]] * 5
    assert len(listed) == 1


def test_a_rotation_by_another_process_is_used_on_the_next_signature(tmp_path: Path) -> None:
    reader, rotator = KeyDir(tmp_path), KeyDir(tmp_path)
    old_id, _ = reader.signing_key()
    new_id, new_private = rotator.new_signing_key()
    assert new_id != old_id
    key_id, private = reader.signing_key()
    assert key_id == new_id
    assert private.private_bytes_raw() == new_private.private_bytes_raw()
    message = b"receipt"
    assert rotator.verify(key_id, message, private.sign(message))


def test_a_rotation_here_is_used_at_once(tmp_path: Path) -> None:
    key_dir = KeyDir(tmp_path)
    old_id, _ = key_dir.signing_key()
    new_id, _ = key_dir.new_signing_key()
    assert key_dir.signing_key()[0] == new_id != old_id
