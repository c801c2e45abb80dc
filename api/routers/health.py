"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import AppDep
from yingke.guard import StoreUnavailable

# Load balancers give up on a health check after a second or two: answer within one.
READY_PROBE_TIMEOUT = 0.8

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    # async: answered on the event loop, without a worker thread (load balancers call it
    # every few seconds on every process)
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, app: AppDep) -> dict[str, str | int]:
    """The event store answers (503 problem+json within a second when it does not)."""
    if not request.app.state.guard.check(READY_PROBE_TIMEOUT):
        raise StoreUnavailable()
    return {"status": "ready", "position": app.position()}
