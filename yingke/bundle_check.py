"""Check an evidence bundle (证据包), as its PDF or its JSON, against the verified store.

``yingke verify`` recomputes every chain and signed checkpoint of the store. With
``--bundle FILE`` it then checks the document an auditor was handed: every chain entry it
prints (position, hash, prev) is the stored entry at that log position, of the bundle's
stream; the entries are versions 1..n of that stream with none left out; and the printed
checkpoint is a stored one at or after the last event, whose Ed25519 signature verifies
over the printed message with the key of that id. A PDF is read back as text (pypdf), so
what is checked is what a reader sees printed, not data hidden beside it.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yingke.chain import Signer, checkpoint_message, checkpoints, stream_links


class BundleMismatch(Exception):
    """The bundle is not what the verified store holds; the message says where."""


@dataclass(frozen=True)
class PrintedLink:
    position: int
    hash: str
    prev: str


@dataclass(frozen=True)
class PrintedCheckpoint:
    position: int
    log_hash: str
    key_id: str
    signature: str
    message: str


@dataclass(frozen=True)
class PrintedBundle:
    stream: uuid.UUID
    events: int  # how many events the bundle says it holds
    links: list[PrintedLink]
    checkpoint: PrintedCheckpoint | None
    withheld: tuple[int, ...] = ()  # versions the bundle declares it leaves out


def read_bundle(path: Path) -> PrintedBundle:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleMismatch(f"cannot read {path}: {exc.strerror}") from None
    try:
        if raw.startswith(b"%PDF-"):
            return _from_pdf(raw)
        return _from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise BundleMismatch(f"not an evidence bundle ({path.name}): {exc}") from None


def _from_json(data: dict[str, Any]) -> PrintedBundle:
    links = []
    for entry in data["timeline"]:
        link = entry.get("chain")
        if link is None:
            raise BundleMismatch(f"version {entry.get('version')} carries no chain entry")
        links.append(PrintedLink(int(link["position"]), link["hash"], link["prev_hash"]))
    cp = data.get("checkpoint")
    return PrintedBundle(
        uuid.UUID(data["chain"]["stream"]),
        len(data["timeline"]),
        links,
        None
        if cp is None
        else PrintedCheckpoint(
            int(cp["position"]), cp["log_hash"], cp["key_id"], cp["signature"], cp["message"]
        ),
        tuple(int(v) for v in data.get("withheld_versions") or ()),
    )


_LINE = re.compile(r"^(position|hash|prev) (\S+)$")
_FOOTER = re.compile(r"^赢客 Yingke 证据包 · 第 \d+ 页$")


def _from_pdf(raw: bytes) -> PrintedBundle:
    from pypdf import PdfReader

    text = "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(raw)).pages)
    # The page footer is drawn on every page and may fall between an event's lines.
    lines = [s for s in (line.strip() for line in text.splitlines()) if s and not _FOOTER.match(s)]
    links: list[PrintedLink] = []
    for index in range(len(lines) - 2):
        # Each event ends with three Courier lines of its own: position, hash, prev.
        found = [_LINE.match(line) for line in lines[index : index + 3]]
        if all(found) and [m.group(1) for m in found if m] == ["position", "hash", "prev"]:
            position, digest, prev = (m.group(2) for m in found if m)
            links.append(PrintedLink(int(position), digest, prev))
    stream = re.search(r"事件流 ([0-9a-f-]{36})", text)
    events = re.search(r"共 (\d+) 条事件", text)
    if stream is None or events is None:
        raise ValueError("no stream or event count printed")

    def field(name: str) -> str | None:
        found = [line.split(" ", 1)[1] for line in lines if line.startswith(f"{name} ")]
        return found[0] if len(found) == 1 else None

    position = field("checkpoint_position")
    checkpoint = None
    if position is not None:
        checkpoint = PrintedCheckpoint(
            int(position),
            field("checkpoint_log_hash") or "",
            field("key_id") or "",
            field("signature") or "",
            field("message") or "",
        )
    withheld = re.search(r"本视图按访问权限未列出的事件版本：(.*)", text)
    versions = re.findall(r"v(\d+)", withheld.group(1)) if withheld else []
    return PrintedBundle(
        uuid.UUID(stream.group(1)),
        int(events.group(1)),
        links,
        checkpoint,
        tuple(int(v) for v in versions),
    )


def check_bundle(recorder: Any, signer: Signer, printed: PrintedBundle) -> str:
    """One line saying what matched; BundleMismatch at the first thing that does not."""
    if not printed.links:
        raise BundleMismatch("the bundle prints no chain entries")
    if len(printed.links) != printed.events:
        raise BundleMismatch(
            f"the bundle lists {printed.events} events but prints {len(printed.links)} "
            "chain entries"
        )
    stored = {row.position: row for row in stream_links(recorder, printed.stream)}
    versions = []
    for link in printed.links:
        row = stored.get(link.position)
        if row is None:
            raise BundleMismatch(
                f"position {link.position}: the store holds no event of stream "
                f"{printed.stream} there"
            )
        pairs = (("hash", link.hash, row.hash), ("prev", link.prev, row.prev_hash))
        for name, shown, kept in pairs:
            if shown != kept.hex():
                raise BundleMismatch(
                    f"version {row.version} position {link.position}: the bundle prints "
                    f"{name} {shown}, the verified chain has {kept.hex()}"
                )
        versions.append(row.version)
    # Versions 1..n, each either printed or declared withheld by the reader's view.
    withheld = set(printed.withheld)
    skipped: set[int] = set()
    expected = 1
    for version in [*versions, None]:  # None: the withheld ones may also come last
        while expected in withheld and expected != version:
            skipped.add(expected)
            expected += 1
        if version is None:
            break
        if version != expected:
            raise BundleMismatch(
                f"version {expected} of stream {printed.stream} is missing from the bundle "
                f"(it goes on with version {version})"
            )
        expected += 1
    unused = sorted(withheld - skipped)
    if unused:
        raise BundleMismatch(f"versions {unused} are declared withheld but do not fit the gaps")
    note = ""
    if withheld:
        note = f" ({', '.join(f'v{v}' for v in sorted(withheld))} withheld from this view)"
    return f"{len(versions)} events of stream {printed.stream} (v1..v{versions[-1]}){note} " + (
        _check_checkpoint(recorder, signer, printed.checkpoint, printed.links[-1].position)
    )


def _check_checkpoint(
    recorder: Any, signer: Signer, cp: PrintedCheckpoint | None, last: int
) -> str:
    if cp is None:
        raise BundleMismatch("the bundle prints no signed checkpoint")
    if cp.position < last:
        raise BundleMismatch(
            f"the checkpoint at {cp.position} does not cover the last event at {last}"
        )
    stored = [c for c in checkpoints(recorder, cp.position) if c.position == cp.position]
    if not stored or stored[0].log_hash.hex() != cp.log_hash:
        raise BundleMismatch(
            f"the checkpoint at {cp.position} with log hash {cp.log_hash} is not in the store"
        )
    message = checkpoint_message(cp.position, stored[0].log_hash)
    try:
        signature = base64.b64decode(cp.signature, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if cp.message != message.hex() or not signer.verify(cp.key_id, message, signature):
        raise BundleMismatch(
            f"the checkpoint signature does not verify (position {cp.position}, key {cp.key_id})"
        )
    return (
        f"match the verified chain; checkpoint {cp.position} covers them, signature verified "
        f"with key {cp.key_id}"
    )
