"""Check an evidence bundle (证据包), as its PDF or its JSON, against the verified store.

``yingke verify`` recomputes every chain and signed checkpoint of the store. With
``--bundle FILE`` it then checks the document an auditor was handed: every chain entry it
prints (position, hash, prev) is the stored entry at that log position, of the bundle's
stream; each event listed there is, by type (its class), version and time, the stored
event at that position, decoded from the store; the entries are versions 1..n of that
stream with none left out but those the bundle declares withheld, and each of those is a
stored event of a kind a party's view leaves out (``ContactDisclosed``); the printed
checkpoint is a stored one at or after the last event, whose Ed25519 signature verifies
over the printed message with the key of that id. A PDF is read back as text (pypdf), so
what is checked is what a reader sees printed, not data hidden beside it. Not checked:
the rest of the document (event contents, decisions, reports, disputes) is the server's
presentation of those events, derived from them but not compared here.
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
from yingke.evidence import WITHHELD_FROM_PARTIES


class BundleMismatch(Exception):
    """The bundle is not what the verified store holds; the message says where."""


@dataclass(frozen=True)
class PrintedLink:
    position: int
    hash: str
    prev: str
    # The event listed with this entry: its version, class name and time, as printed.
    version: int | None = None
    type: str | None = None
    time: str | None = None


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
        links.append(
            PrintedLink(
                int(link["position"]),
                link["hash"],
                link["prev_hash"],
                int(entry["version"]),
                str(entry["type"]),
                str(entry["occurred_at"]),
            )
        )
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
# An event's first line in section 一: "v3　<time>　<type>　操作人 …".
_EVENT = re.compile(r"^v(\d+)\s+(\d{4}-\S+)\s+([A-Z]\w*)(?:\s|$)")
_TIMELINE = re.compile(r"^一、时间线（共 (\d+) 条事件")
_DECISIONS = "二、每次判定后的归属与依据"
_CHAIN = "六、哈希链与签名检查点"


def _from_pdf(raw: bytes) -> PrintedBundle:
    from pypdf import PdfReader

    text = "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(raw)).pages)
    # The page footer is drawn on every page and may fall between an event's lines.
    lines = [s for s in (line.strip() for line in text.splitlines()) if s and not _FOOTER.match(s)]
    # Only the dedicated parts are read: the timeline (section 一) for the events and their
    # chain entries, section 六 for the stream and checkpoint; free text elsewhere that
    # happens to read "position …" or "hash …" is not taken for an entry.
    first = next((i for i, line in enumerate(lines) if _TIMELINE.match(line)), None)
    chain_at = next((i for i, line in enumerate(lines) if line == _CHAIN), None)
    if first is None or chain_at is None:
        raise ValueError("no timeline or chain section printed")
    count = _TIMELINE.match(lines[first])
    assert count is not None
    last = next((i for i in range(first, len(lines)) if lines[i] == _DECISIONS), len(lines))
    timeline = lines[first + 1 : last]
    heads = [i for i, line in enumerate(timeline) if _EVENT.match(line)]
    preamble = " ".join(timeline[: heads[0] if heads else len(timeline)])
    links: list[PrintedLink] = []
    for at, head in enumerate(heads):
        block = timeline[head : heads[at + 1] if at + 1 < len(heads) else len(timeline)]
        event = _EVENT.match(block[0])
        # Each event ends with three Courier lines of its own: position, hash, prev; its
        # contents (free text included) come before them.
        found = [_LINE.match(line) for line in block[-3:]]
        if event is None or len(block) < 4 or not all(found):
            raise ValueError(f"event {block[0]!r} prints no chain entry")
        if [m.group(1) for m in found if m] != ["position", "hash", "prev"]:
            raise ValueError(f"event {block[0]!r} prints no chain entry")
        position, digest, prev = (m.group(2) for m in found if m)
        links.append(
            PrintedLink(
                int(position),
                digest,
                prev,
                int(event.group(1)),
                event.group(3),
                event.group(2),
            )
        )
    section = lines[chain_at:]
    stream = re.search(r"事件流 ([0-9a-f-]{36})", "\n".join(section))
    if stream is None:
        raise ValueError("no stream printed")

    def field(name: str) -> str | None:
        found = [line.split(" ", 1)[1] for line in section if line.startswith(f"{name} ")]
        return found[0] if len(found) == 1 else None

    cp_position = field("checkpoint_position")
    checkpoint = None
    if cp_position is not None:
        checkpoint = PrintedCheckpoint(
            int(cp_position),
            field("checkpoint_log_hash") or "",
            field("key_id") or "",
            field("signature") or "",
            field("message") or "",
        )
    withheld = re.search(r"本视图按访问权限未列出的事件版本：(.*)", preamble)
    versions = re.findall(r"v(\d+)", withheld.group(1)) if withheld else []
    return PrintedBundle(
        uuid.UUID(stream.group(1)),
        int(count.group(1)),
        links,
        checkpoint,
        tuple(int(v) for v in versions),
    )


def check_bundle(store: Any, signer: Signer, printed: PrintedBundle) -> str:
    """One line saying what matched; BundleMismatch at the first thing that does not.

    ``store`` is the event store application: its recorder for the chain, its mapper
    (through ``events``) to decode the stored events the bundle lists."""
    recorder = store.recorder
    if not printed.links:
        raise BundleMismatch("the bundle prints no chain entries")
    if len(printed.links) != printed.events:
        raise BundleMismatch(
            f"the bundle lists {printed.events} events but prints {len(printed.links)} "
            "chain entries"
        )
    stored = {row.position: row for row in stream_links(recorder, printed.stream)}
    # Decoded as the application reads them (upcast, decrypted): what the bundle was made of.
    events = {e.originator_version: e for e in store.events.get(printed.stream)}
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
        _check_event(link, row.version, events.get(row.version))
        versions.append(row.version)
    for declared in sorted(set(printed.withheld)):
        kind = type(events[declared]).__name__ if declared in events else None
        if kind not in WITHHELD_FROM_PARTIES:
            raise BundleMismatch(
                f"version {declared} is declared withheld but is a {kind or 'missing event'}; "
                f"a view leaves out only {', '.join(sorted(WITHHELD_FROM_PARTIES))}"
            )
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


def _check_event(link: PrintedLink, version: int, event: Any) -> None:
    """The event the bundle lists with this chain entry is the stored one: type, version
    and time as the store decodes them."""
    where = f"version {version} position {link.position}"
    if event is None:
        raise BundleMismatch(f"{where}: the store holds no such event of the stream")
    kept = (
        ("version", link.version, version),
        ("type", link.type, type(event).__name__),
        ("time", link.time, event.timestamp.isoformat()),
    )
    for name, shown, value in kept:
        if shown is not None and str(shown) != str(value):
            raise BundleMismatch(
                f"{where}: the bundle prints {name} {shown}, the stored event has {value}"
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
