"""What the domain needs from the outside world, as protocols the composition root fills."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

Clock = Callable[[], datetime]


class PersonalDataVault(Protocol):
    """Seals personal data under a key per subject (a client, or a masked report).

    Destroying a subject's key erases everything sealed under it without touching the
    append-only event store (crypto-shredding).
    """

    def seal(self, subject: uuid.UUID, data: dict[str, str]) -> str: ...

    def seal_new(self, items: list[tuple[uuid.UUID, dict[str, str]]]) -> list[str]:
        """``seal`` for many subjects at once, creating their keys together."""
        ...

    def open(self, subject: uuid.UUID, token: str) -> dict[str, str] | None: ...

    def erase(self, subject: uuid.UUID) -> None: ...
