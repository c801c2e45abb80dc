"""Count and time every request by its route template (``/v1/clients/{client_id}``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from starlette.routing import BaseRoute

from yingke.metrics import Metrics


def instrument(app: FastAPI) -> None:
    """Observe into the container's registry; a ``serve`` waiting for its store has none yet."""

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500  # what the client sees if the handler raises past every handler
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            # The template, not the path: a label per client id would grow without bound.
            container = request.app.state.container
            metrics: Metrics | None = container.metrics if container is not None else None
            route: BaseRoute | None = request.scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if metrics is not None:
                metrics.requests.labels(request.method, template, str(status)).inc()
                metrics.request_seconds.labels(request.method, template).observe(
                    time.perf_counter() - started
                )
