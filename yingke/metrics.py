"""Prometheus metrics (ADR 0024): one registry per process, served by the API or a worker.

Counters and histograms count what happens as it happens (requests, loop steps, messages
published and applied, reminders). What is a property of the stores — the head of the
log, each view's position and lag, deadlines fired — is read when scraped, so a scrape
always agrees with ``GET /v1/views/status``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from yingke.chain import integrity_failures

if TYPE_CHECKING:
    from yingke.bootstrap import Container
    from yingke.loop_status import LoopStatus
    from yingke.settings import Settings

log = logging.getLogger("yingke.metrics")

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "serve"]


class Metrics:
    """The instruments of one process; ``registry`` is what a scrape renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "yingke_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "yingke_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=r,
        )
        self.loop_runs = Counter(
            "yingke_loop_runs", "Steps a worker loop completed, by loop.", ["loop"], registry=r
        )
        self.loop_errors = Counter(
            "yingke_loop_errors",
            "Steps a worker loop failed (and will retry), by loop.",
            ["loop"],
            registry=r,
        )
        self.loop_last_success = Gauge(
            "yingke_loop_last_success_timestamp_seconds",
            "Unix time of a worker loop's last successful step.",
            ["loop"],
            registry=r,
        )
        self.loop_failing = Gauge(
            "yingke_loop_failing",
            "1 while a worker loop's last step failed, 0 once a step succeeds again.",
            ["loop"],
            registry=r,
        )
        self.relay_published = Counter(
            "yingke_relay_published",
            "Messages the relay published and the broker acknowledged.",
            registry=r,
        )
        self.consumer_processed = Counter(
            "yingke_consumer_processed",
            "Kafka messages a consumer applied, by consumer.",
            ["consumer"],
            registry=r,
        )
        self.reminders_sent = Counter(
            "yingke_reminders_sent", "Reminders the webhook accepted.", registry=r
        )
        self.loop_status_write_failures = Counter(
            "yingke_loop_status_write_failures",
            "Writes of a loop's state to the shared yingke_loop_status table that failed.",
            registry=r,
        )
        # Where each step's outcome is also written for every process to see (set by the
        # process that owns a views database: the container, a Kafka consumer).
        self.status: LoopStatus | None = None
        self.reminders_dead_lettered = Counter(
            "yingke_reminders_dead_lettered",
            "Reminders given up on after the last attempt and sent to the dead-letter topic.",
            registry=r,
        )

    # Loops report through these (projections.runtime.Loop, the relay, the consumers).
    def succeeded(self, loop: str, *, interval: float | None = None) -> None:
        self.loop_runs.labels(loop).inc()
        self.loop_last_success.labels(loop).set(time.time())
        self.loop_failing.labels(loop).set(0)
        if self.status is not None:
            self.status.record(loop, ok=True, interval=interval)

    def failed(self, loop: str, error: str | None = None, *, interval: float | None = None) -> None:
        self.loop_errors.labels(loop).inc()
        self.loop_failing.labels(loop).set(1)
        if self.status is not None:
            self.status.record(loop, error, ok=False, interval=interval)

    def report_to(self, status: LoopStatus) -> None:
        """Also write every loop's state to the shared table through ``status``."""
        self.status = status
        status.on_write_failure(self.loop_status_write_failures.inc)

    def counted(
        self, consumer: str, apply: Callable[[list[Any]], int], interval: float | None = None
    ) -> Callable[[list[Any]], int]:
        """``apply`` for run_group, counting the messages it applied."""

        def counting(messages: list[Any]) -> int:
            applied = apply(messages)
            self.consumer_processed.labels(consumer).inc(len(messages))
            self.succeeded(f"consume-{consumer}", interval=interval)
            return applied

        return counting

    def watch(self, container: Container) -> None:
        """Read the log head, the views and the deadlines of ``container`` at each scrape."""
        self.registry.register(_StoreCollector(container))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    def __init__(self, container: Container) -> None:
        self.container = container

    def describe(self) -> Iterable[Any]:
        return []  # collected only at scrape time: reading the stores at registration is wasteful

    def collect(self) -> Iterable[Any]:
        head = GaugeMetricFamily("yingke_events_head", "Highest notification id in the event log.")
        head.add_metric([], self.container.position())
        yield head
        position = GaugeMetricFamily(
            "yingke_view_position", "Last notification id applied to the view.", labels=["view"]
        )
        lag = GaugeMetricFamily(
            "yingke_view_lag", "Events in the log not yet applied to the view.", labels=["view"]
        )
        for name, (at, behind) in self.container.follower.lag().items():
            position.add_metric([name], at)
            lag.add_metric([name], behind)
        yield position
        yield lag
        fired = CounterMetricFamily(
            "yingke_deadlines_fired",
            "Deadline commands that acted in this process, by kind.",
            labels=["kind"],
        )
        for kind, count in self.container.deadlines.fired.items():
            fired.add_metric([kind], count)
        yield fired
        yield from _loop_status(self.container)
        yield CounterMetricFamily(
            "yingke_integrity_failures",
            "Streams whose hash chain failed on load in this process.",
            value=integrity_failures(),
        )


def _loop_status(container: Container) -> Iterable[Any]:
    """Every process's loops from the shared table, labelled by loop and process."""
    from yingke import loop_status

    try:
        rows = loop_status.read(container.views)
    except Exception as exc:  # a scrape still answers with what this process knows
        log.warning("loop status table not read: %s", exc)
        return
    labels = ["loop", "process"]
    success = GaugeMetricFamily(
        "yingke_loop_status_last_success_timestamp_seconds",
        "Unix time of each loop's last successful step, from the shared status table.",
        labels=labels,
    )
    error_at = GaugeMetricFamily(
        "yingke_loop_status_last_error_timestamp_seconds",
        "Unix time of each loop's last failed step, from the shared status table.",
        labels=labels,
    )
    failing = GaugeMetricFamily(
        "yingke_loop_status_failing",
        "1 while a loop's last step failed (its last_error is in /v1/views/status).",
        labels=labels,
    )
    stale = GaugeMetricFamily(
        "yingke_loop_status_stale",
        "1 when a loop has not reported for a few of its intervals (its process may be dead).",
        labels=labels,
    )
    for row in rows:
        key = [row["loop"], row["process"]]
        if row["last_success"] is not None:
            success.add_metric(key, row["last_success"].timestamp())
        if row["last_error_at"] is not None:
            error_at.add_metric(key, row["last_error_at"].timestamp())
        failing.add_metric(key, 1 if row["last_error"] is not None else 0)
        stale.add_metric(key, 1 if row["stale"] else 0)
    yield from (success, error_at, failing, stale)


def serve(metrics: Metrics, settings: Settings, process: str) -> int | None:
    """Serve ``/metrics`` for a worker process if a port is set; the port bound, or None."""
    if settings.metrics_port is None:
        return None
    server, _ = start_http_server(
        settings.metrics_port, addr=settings.metrics_host, registry=metrics.registry
    )
    port = int(server.server_address[1])
    print(f"yingke {process}: metrics on http://{settings.metrics_host}:{port}/metrics", flush=True)
    return port
