"""Domain errors. The API maps each family to its answer in one place (api/problems.py)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: ``code`` is stable and machine-readable, ``str(e)`` is for humans."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """A value broke a business rule about its shape, with the field named."""

    code = "invalid_input"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field

    def details(self) -> list[dict[str, str]]:
        """The field-level ``errors``: one per field that broke a rule."""
        return [{"field": self.field, "message": str(self), "code": self.code}]


class InvalidRows(InvalidInput):
    """Rows of one import broke the rules: every bad row is reported, none is applied.

    Each problem is (field, message, code) with the row in the field, e.g. "line 7: area".
    """

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        super().__init__(
            problems[0][0],
            f"{len(problems)} problem(s) in the rows; nothing was imported",
            code="invalid_rows",
        )
        self.problems = problems

    def details(self) -> list[dict[str, str]]:
        return [{"field": f, "message": m, "code": c} for f, m, c in self.problems]


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """The command is well formed but the current state refuses it."""

    code = "conflict"


class Forbidden(DomainError):
    """The actor may not do this to this object."""

    code = "forbidden"


class IdempotencyKeyReused(DomainError):
    """Same Idempotency-Key, different request: refused rather than guessed at."""

    code = "idempotency_key_reused"


class TooMuchContention(DomainError):
    """Optimistic retries ran out; the caller may safely try again."""

    code = "contention"


class RateLimited(DomainError):
    """A per-principal allowance is used up; ``retry_after`` seconds until it renews."""

    code = "rate_limited"

    def __init__(self, message: str, *, code: str, retry_after: int) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
