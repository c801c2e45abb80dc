"""Timestamp values that read and compare the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# SQLite keeps timestamps as fixed-width UTC text, which sorts and compares correctly.
_TEXT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def ts(dialect: str, moment: datetime | None) -> Any:
    if moment is None:
        return None
    if dialect == "postgres":
        return moment
    return moment.astimezone(UTC).strftime(_TEXT_FORMAT)


def read_ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.strptime(str(value), _TEXT_FORMAT).replace(tzinfo=UTC)
