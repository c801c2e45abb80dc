"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AppDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(app: AppDep) -> dict[str, str | int]:
    """The event store answers (503 problem+json when it does not)."""
    return {"status": "ready", "position": app.position()}
