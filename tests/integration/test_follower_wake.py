"""The follower starts a batch when events commit, not at its next poll (yingke/wake.py).

The poll is set to a minute: a view row that appears within the 10 s bound was woken,
not polled. Each test first waits for the follower's first step (it runs one at start),
so what it then reads can only come from a wake-up."""

from __future__ import annotations

import threading
from dataclasses import replace

import psycopg
import pytest

from projections.runtime import Loop
from tests.support import file_report, unique, wait_until
from yingke.bootstrap import Container, build, conninfo
from yingke.settings import Settings

LONG_POLL = 60.0
WOKEN_BOUND = 10.0


def _head(app: Container) -> int:
    return app.store.recorder.max_notification_id() or 0


def _caught_up(app: Container, position: int) -> bool:
    return min(app.follower.positions().values()) >= position


def _idle_follower(app: Container) -> Loop:
    app.start_workers()
    loop = app.loops[0]
    wait_until(lambda: loop.last_success is not None, message="the follower's first step")
    return loop


def test_a_save_in_the_same_process_wakes_the_follower(settings: Settings) -> None:
    app = build(replace(settings, follow_interval=LONG_POLL))
    try:
        _idle_follower(app)
        file_report(app, unique("proj"), "p1", "13800138000")
        wait_until(
            lambda: _caught_up(app, _head(app)),
            WOKEN_BOUND,
            "the follower, polling every minute, to be woken by the save",
        )
    finally:
        app.close()


@pytest.mark.postgres
def test_a_save_in_another_process_wakes_the_follower_by_notify(pg_settings: Settings) -> None:
    settings = replace(pg_settings, follow_interval=LONG_POLL)
    follower = build(settings)
    # Another process's saves: its recorder has no in-process hook to the follower.
    writer = build(settings)
    try:
        _idle_follower(follower)
        assert follower.listener is not None
        wait_until(follower.listener.listening.is_set, message="the LISTEN connection")
        file_report(writer, unique("proj"), "p1", "13800138001")
        wait_until(
            lambda: _caught_up(follower, _head(writer)),
            WOKEN_BOUND,
            "the follower to be woken by PostgreSQL's notification",
        )
    finally:
        writer.close()
        follower.close()


def test_without_a_signal_the_follower_still_polls(settings: Settings) -> None:
    """A lost notification (or a save no hook saw) is read at the next poll."""
    app = build(replace(settings, follow_interval=0.2))
    never = threading.Event()
    loop = Loop("views", app.follower.run_once, 0.2, wake=never)
    try:
        loop.start()
        wait_until(lambda: loop.last_success is not None, message="the first step")
        file_report(app, unique("proj"), "p1", "13800138002")
        wait_until(lambda: _caught_up(app, _head(app)), message="the next poll")
    finally:
        loop.stop()
        app.close()


def test_a_wake_up_cuts_the_poll_short() -> None:
    wake = threading.Event()
    steps: list[int] = []

    def step() -> int:
        steps.append(1)
        return 0

    loop = Loop("test", step, LONG_POLL, wake=wake, coalesce=0.001)
    loop.start()
    try:
        wait_until(lambda: len(steps) == 1, message="the first step")
        wake.set()
        wait_until(lambda: len(steps) == 2, WOKEN_BOUND, "a step after the wake-up")
    finally:
        loop.stop()
    assert not loop.is_alive()


def test_a_short_batch_waits_for_the_next_wake_up() -> None:
    """A step that read less than a full batch reached the head of the log: the next one
    waits for a commit instead of running an empty transaction at once."""
    wake = threading.Event()
    woken = threading.Event()
    seen: list[bool] = []

    def step() -> int:
        seen.append(woken.is_set())
        return 3

    loop = Loop("test", step, LONG_POLL, wake=wake, full=10)
    loop.start()
    try:
        wait_until(lambda: len(seen) == 1, message="the first step")
        woken.set()
        wake.set()
        wait_until(lambda: len(seen) == 2, WOKEN_BOUND, "a step after the wake-up")
    finally:
        loop.stop()
    assert seen[:2] == [False, True]


@pytest.mark.postgres
def test_the_listener_reconnects_when_its_connection_drops(pg_settings: Settings) -> None:
    """Meanwhile the follower polls; then notifications wake it again."""
    app = build(replace(pg_settings, follow_interval=0.2))
    try:
        app.start_workers()
        listener = app.listener
        assert listener is not None
        wait_until(listener.listening.is_set, message="the LISTEN connection")
        with psycopg.connect(conninfo(pg_settings), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            )
        wait_until(lambda: listener.connections >= 2, WOKEN_BOUND, "a new LISTEN connection")
        file_report(app, unique("proj"), "p1", "13800138003")
        wait_until(lambda: _caught_up(app, _head(app)), message="the follower")
    finally:
        app.close()
