"""Turning a CommandResult into an HTTP response."""

from __future__ import annotations

from fastapi import Response
from fastapi.responses import JSONResponse

from domain.application import CommandResult

POSITION_HEADER = "Yingke-Position"


def command_response(result: CommandResult) -> Response:
    headers = {}
    if result.position is not None:
        # Read-your-writes: a later query may wait until views reach this position.
        headers[POSITION_HEADER] = str(result.position)
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(result.body, status_code=result.status_code, headers=headers)
