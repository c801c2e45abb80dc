"""What the domain needs from the outside world, as protocols the composition root fills."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

Clock = Callable[[], datetime]


class PersonalDataVault(Protocol):
    """Seals personal data under a key per subject (a client, or a masked report).

    Destroying a subject's key erases everything sealed under it without touching the
    append-only event store (crypto-shredding).
    """

    def seal(self, subject: uuid.UUID, data: dict[str, str], *, new: bool = False) -> str:
        """``new``: the caller has just found no stream for ``subject`` (a buyer seen for
        the first time, a new report id): the vault may skip looking for its key."""
        ...

    def seal_new(self, items: list[tuple[uuid.UUID, dict[str, str]]]) -> list[str]:
        """``seal`` for many subjects at once, creating their keys together."""
        ...

    def open(self, subject: uuid.UUID, token: str) -> dict[str, str] | None: ...

    def erase(self, subject: uuid.UUID) -> None: ...


@dataclass(frozen=True)
class Folded:
    """A stream folded as of an instant: ``state`` after ``folded`` (the events at or
    before the instant, on top of a snapshot at version ``base`` when ``base`` > 0);
    ``events``: every event read (some may lie after the instant). ``head``: the chain
    hash of the stream's last event when the read reached it (the latest state), if the
    reader knows it; ``also``: the event asked for as ``also``, if the reader fetched it
    (else None, and the caller reads it)."""

    state: Any
    events: list[Any]
    folded: list[Any]
    base: int
    head: bytes | None = None
    also: Any = None


class History(Protocol):
    """Folds a stream as of ``at`` (None: its latest state), every event read through the
    hash chain's check. ``also``: the version of one more event the caller will need (one
    under a snapshot, say), fetched with the fold if the reader can."""

    def fold(self, stream: uuid.UUID, at: datetime | None, also: int | None = None) -> Folded: ...

    def whole(self, stream: uuid.UUID) -> Folded:
        """Every event of the stream, folded (the latest state), with ``head`` if known."""
        ...

    def many(self, streams: list[uuid.UUID]) -> dict[uuid.UUID, Folded]:
        """Several whole streams at once (the latest state of each), in a few statements
        rather than one per stream; those without events are left out."""
        ...

    def event(self, stream: uuid.UUID, version: int) -> Any:
        """The event at ``version`` (None if there is none), checked against its chain
        entry and its link to the one before."""
        ...
