"""Domain errors. The API maps each family to one HTTP status in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: ``code`` is stable and machine-readable, ``str(e)`` is for humans."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """A value broke a business rule about its shape (422, with the field named)."""

    code = "invalid_input"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """The command is well formed but the current state refuses it (409)."""

    code = "conflict"


class Forbidden(DomainError):
    """The actor may not do this to this object (403)."""

    code = "forbidden"


class IdempotencyKeyReused(DomainError):
    """Same Idempotency-Key, different request: refused rather than guessed at."""

    code = "idempotency_key_reused"


class TooMuchContention(DomainError):
    """Optimistic retries ran out; the caller may safely try again (503)."""

    code = "contention"
