"""Key material kept outside the database: KEK epochs and Ed25519 signing keys.

Both live in one directory (``YINGKE_KEY_DIR``, default ``<data dir>/keys``): a 0600
directory on the embedded default, a shared secret mount in the scaled topology.

- ``kek-<epoch>.key``: 32 random bytes that wrap the per-buyer keys (ADR 0036). An
  epoch is destroyed by overwriting and unlinking its file once no key is wrapped by it.
- ``signing-<key_id>.key`` / ``signing-<key_id>.json``: the Ed25519 private key that
  signs receipts and log checkpoints, and its public record (valid_from, valid_until).
  Rotation ends the old key's validity and deletes its private half; the public record
  stays, so receipts and checkpoints it signed still verify (ADR 0037).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# A KEK file's identity: device, inode, last modification. A file destroyed and another
# written under its name differ in the inode or, should the inode be reused, the mtime.
KekFile = tuple[int, int, int]


def _identity(st: os.stat_result) -> KekFile:
    return st.st_dev, st.st_ino, st.st_mtime_ns


_KEK = re.compile(r"^kek-(\d{6})\.key$")
_SIGNING = re.compile(r"^signing-([0-9a-f]{16})\.json$")


def _write_secret(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write a new 0600 file atomically (readers never see half a key).

    ``exclusive``: raise FileExistsError rather than replace a file already there.
    """
    tmp = path.with_name(path.name + f".tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if not exclusive:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic and never replaces, unlike a rename
    except FileExistsError:
        os.unlink(tmp)
        raise
    except OSError:
        # A directory without hard links (some FUSE mounts): look, then rename, which
        # can still replace a file created in between, as before ADR 0072.
        if os.path.exists(path):
            os.unlink(tmp)
            raise FileExistsError(path) from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def destroy_file(path: Path) -> None:
    """Overwrite then unlink: the bytes do not stay behind in the file's blocks.

    The file is renamed away first so no reader opens it mid-overwrite, and readers
    check a digest (``_sealed_material``), so a torn read is "missing", never a wrong key.
    """
    doomed = path.with_name(f".destroying-{secrets.token_hex(4)}-{path.name}")
    try:
        os.replace(path, doomed)
    except FileNotFoundError:
        return
    time.sleep(0.05)  # let a read that opened the file just before the rename finish
    path = doomed
    try:
        size = path.stat().st_size
        with open(path, "r+b") as handle:
            handle.write(os.urandom(size))
            handle.flush()
            os.fsync(handle.fileno())
            handle.seek(0)
            handle.write(b"\x00" * size)
            handle.flush()
            os.fsync(handle.fileno())
        path.unlink()
    except FileNotFoundError:
        pass


class KeyDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._path = str(path)
        self._lock = threading.Lock()
        # The current signing key as last read, with the file it was read from.
        self._signing: tuple[str, Ed25519PrivateKey, Path] | None = None
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)

    # ------------------------------------------------------------------ KEKs

    def epochs(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.path.iterdir() if (m := _KEK.match(p.name)))

    def kek(self, epoch: int) -> bytes | None:
        found = self.read_kek(epoch)
        return found[0] if found is not None else None

    def read_kek(self, epoch: int) -> tuple[bytes, KekFile] | None:
        """The epoch's material and the identity of the file it was read from."""
        try:
            fd = os.open(self._kek_path(epoch), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            # Identity from the descriptor read, not the path: the path may name
            # another file by the time a stat of it returns.
            identity = _identity(os.fstat(fd))
            data = b""
            while chunk := os.read(fd, 64):
                data += chunk
        finally:
            os.close(fd)
        material, digest = data[:32], data[32:]
        if len(material) != 32 or hashlib.sha256(material).digest()[:16] != digest:
            return None  # being destroyed
        return material, identity

    def kek_unchanged(self, epoch: int, identity: KekFile) -> bool:
        """Whether the epoch's file is still the one ``read_kek`` answered ``identity`` for.

        One stat, no read: checked after every save that stored a new key (ADR 0072).
        Destruction renames the file away before anything else, so once this is True
        after a key's commit, any rotation destroying the epoch starts its scan later and
        sees the row. Comparing the identity, not only the name, also catches a file put
        in its place (two processes creating the same epoch number, a restored backup).
        """
        try:
            return _identity(os.stat(self._kek_path(epoch))) == identity
        except FileNotFoundError:
            return False

    def _kek_path(self, epoch: int) -> str:
        return os.path.join(self._path, f"kek-{epoch:06d}.key")

    def current_epoch(self) -> int:
        """The newest epoch, created on first use."""
        epochs = self.epochs()
        if epochs:
            return epochs[-1]
        return self.new_epoch()

    def new_epoch(self) -> int:
        with self._lock:
            epochs = self.epochs()
            epoch = (epochs[-1] if epochs else 0) + 1
            path = self.path / f"kek-{epoch:06d}.key"
            if not path.exists():
                material = secrets.token_bytes(32)
                # Another process may create this epoch since the listing (its own
                # rotation): keys it wraps under its file must stay readable, so this
                # rotation then uses that file too.
                with contextlib.suppress(FileExistsError):
                    _write_secret(
                        path, material + hashlib.sha256(material).digest()[:16], exclusive=True
                    )
            return epoch

    def destroy_epoch(self, epoch: int) -> None:
        destroy_file(Path(self._kek_path(epoch)))

    def schedule_retirement(self, at: float) -> None:
        """Erasures within the delay share one retirement: the earliest due time wins."""
        with self._lock:
            due = self.retirement_due()
            if due is None or at < due:
                _write_secret(self.path / "retire-due", str(at).encode())

    def retirement_due(self) -> float | None:
        try:
            return float((self.path / "retire-due").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def clear_retirement(self) -> None:
        (self.path / "retire-due").unlink(missing_ok=True)

    # --------------------------------------------------------------- signing

    def signing_keys(self) -> list[SigningKeyInfo]:
        infos = []
        for p in self.path.iterdir():
            if _SIGNING.match(p.name):
                data = json.loads(p.read_text())
                infos.append(
                    SigningKeyInfo(
                        key_id=data["key_id"],
                        public_key=data["public_key"],
                        valid_from=float(data["valid_from"]),
                        valid_until=(
                            float(data["valid_until"]) if data.get("valid_until") else None
                        ),
                    )
                )
        return sorted(infos, key=lambda i: i.valid_from)

    def public_key(self, key_id: str) -> Ed25519PublicKey | None:
        for info in self.signing_keys():
            if info.key_id == key_id:
                return Ed25519PublicKey.from_public_bytes(base64.b64decode(info.public_key))
        return None

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The current signing key, created on first use."""
        cached = self._signing
        # Every receipt is signed: listing and reading the directory each time was a tenth
        # of a report's CPU. A rotation, by any process sharing the directory, destroys the
        # old private half, so while its file is there the key read last is still current.
        if cached is not None and cached[2].exists():
            return cached[0], cached[1]
        for info in reversed(self.signing_keys()):
            if info.valid_until is None:
                path = self.path / f"signing-{info.key_id}.key"
                if path.exists():
                    private = Ed25519PrivateKey.from_private_bytes(path.read_bytes())
                    self._signing = (info.key_id, private, path)
                    return info.key_id, private
        return self.new_signing_key()

    def new_signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        with self._lock:
            private = Ed25519PrivateKey.generate()
            raw_public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            key_id = hashlib.sha256(raw_public).hexdigest()[:16]
            now = time.time()
            for info in self.signing_keys():
                if info.valid_until is None:
                    self._write_info(info.key_id, info.public_key, info.valid_from, now)
                    destroy_file(self.path / f"signing-{info.key_id}.key")
            _write_secret(
                self.path / f"signing-{key_id}.key",
                private.private_bytes_raw(),
            )
            self._write_info(key_id, base64.b64encode(raw_public).decode(), now, None)
            self._signing = (key_id, private, self.path / f"signing-{key_id}.key")
            return key_id, private

    def _write_info(
        self, key_id: str, public_key: str, valid_from: float, valid_until: float | None
    ) -> None:
        record = {
            "key_id": key_id,
            "algorithm": "Ed25519",
            "public_key": public_key,
            "valid_from": valid_from,
            "valid_until": valid_until,
        }
        _write_secret(self.path / f"signing-{key_id}.json", json.dumps(record).encode())

    # The chain.Signer protocol: checkpoints are signed with the same service key.

    def sign_checkpoint(self, message: bytes) -> tuple[str, bytes]:
        key_id, private = self.signing_key()
        return key_id, private.sign(message)

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        public = self.public_key(key_id)
        if public is None:
            return False
        try:
            public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKeyInfo:
    key_id: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    valid_from: float
    valid_until: float | None
