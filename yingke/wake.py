"""Waking the view follower when events commit, instead of at its next poll.

The follower polls the log every ``YINGKE_FOLLOW_INTERVAL`` (0.2 s): at 20 reports/s
that poll was most of the commit → view row lag (README "Commit → view row"). Two
signals now cut the wait short; the poll stays as the fallback, so a lost signal costs
at most one interval, never an event:

- in process, the chained recorder calls ``on_commit`` once a save committed;
- across processes (``serve --workers N``: the HTTP processes append, the supervising
  process follows), every append's transaction already sends ``NOTIFY`` on the events
  table's channel (eventsourcing's recorder, kept by the group-commit writer), and
  ``CommitListener`` holds a ``LISTEN`` connection and turns each notification into a
  wake-up. A dropped connection is reopened after an interval; meanwhile the poll runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

log = logging.getLogger("yingke.wake")

# How long a LISTEN connection waits for a notification before looking at ``stop``.
_LISTEN_STEP = 0.5


class CommitListener(threading.Thread):
    """Sets ``wake`` for every notification on ``channel``; reconnects when it drops."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        channel: str,
        wake: threading.Event,
        retry: float,
    ) -> None:
        super().__init__(name="views-listen", daemon=True)
        self._connect = connect
        self._channel = channel
        self._wake = wake
        self._retry = retry
        self._stop_event = threading.Event()
        # Set while a LISTEN is in place (tests wait on it before committing).
        self.listening = threading.Event()
        self.connections = 0

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                with self._connect() as conn:
                    conn.autocommit = True
                    conn.execute(SQL("LISTEN {}").format(Identifier(self._channel)))
                    self.connections += 1
                    self.listening.set()
                    # What committed while nobody listened is read at once.
                    self._wake.set()
                    while not self._stop_event.is_set():
                        for _ in conn.notifies(timeout=_LISTEN_STEP, stop_after=1):
                            self._wake.set()
            except (psycopg.Error, OSError) as exc:
                log.warning("views: LISTEN %s failed (%s); polling meanwhile", self._channel, exc)
            self.listening.clear()
            self._stop_event.wait(self._retry)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
