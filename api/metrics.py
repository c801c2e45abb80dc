"""Count and time every request by its route template (``/v1/clients/{client_id}``)."""

from __future__ import annotations

import time

from fastapi import FastAPI
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yingke.metrics import Metrics


class Observe:
    """Pure ASGI middleware; a ``serve`` waiting for its store has no registry yet."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the handler raises past every handler

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The template, not the path: a label per client id would grow without bound.
            container = scope["app"].state.container
            metrics: Metrics | None = container.metrics if container is not None else None
            route: BaseRoute | None = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if metrics is not None:
                method = scope["method"]
                metrics.requests.labels(method, template, str(status)).inc()
                metrics.request_seconds.labels(method, template).observe(
                    time.perf_counter() - started
                )


def instrument(app: FastAPI) -> None:
    app.add_middleware(Observe)
