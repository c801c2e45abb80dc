"""The ``If-Match`` header of the versioned settings endpoints (policy, commission policy)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

IfMatch = Annotated[str | None, Header(description="Expected current version")]


def expected_version(if_match: str | None) -> int | None:
    """The version a writer expects to replace: none without the header; a value that is
    not a version (``-1``) never matches, so the write is refused as a conflict."""
    if if_match is None:
        return None
    try:
        return int(if_match.strip('"W/'))
    except ValueError:
        return -1
