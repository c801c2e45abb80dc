"""The integrity field of evidence answers, and the problem for a broken chain."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.problems import problem
from yingke.bootstrap import Container
from yingke.chain import ChainBroken, chain_hash, stream_integrity


def integrity(app: Container, stream: uuid.UUID) -> dict[str, Any]:
    """Re-reads the stream through the chain check; a broken chain raises, never answers."""
    found = stream_integrity(app.store.recorder, stream)
    return {"verified": found.verified, "head_hash": found.head_hash, "version": found.version}


def read_integrity(
    app: Container, stream: uuid.UUID, version: int, head: bytes | None = None
) -> dict[str, Any]:
    """The integrity field for a stream just read through the chain check (a broken chain
    raised then): only the hash of its last event is left to fetch, unless that read
    gave it (``head``)."""
    if head is None:
        head = chain_hash(app.store.recorder, stream, version)
    return {"verified": True, "head_hash": head.hex() if head else None, "version": version}


def install(app: FastAPI) -> None:
    @app.exception_handler(ChainBroken)
    async def chain_broken(request: Request, exc: ChainBroken) -> JSONResponse:
        # 500-class: the store no longer holds what it wrote, which is the server's fault,
        # and the answer would not be evidence; the caller cannot fix it by retrying.
        return problem(
            request,
            500,
            "Integrity failure",
            "the stored history failed its hash-chain check; it is not served as truth",
            "integrity_failure",
            stream=exc.stream,
            version=exc.version,
            position=exc.position,
        )
