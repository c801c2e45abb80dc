"""Turning a command's result into an HTTP response."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse

from domain.services.uow import Done

POSITION_HEADER = "Yingke-Position"


def command_response(done: Done[Any]) -> Response:
    """The response the command's ``respond`` built (or, replayed, the stored one)."""
    assert done.response is not None, "the router passes a respond function in the context"
    headers = {}
    if done.position is not None:
        # Read-your-writes: a later query may wait until views reach this position.
        headers[POSITION_HEADER] = str(done.position)
    if done.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(done.response.body, status_code=done.response.status, headers=headers)
