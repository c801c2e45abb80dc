"""The reminders timer sends only once the consumer has drained, at most every interval,
on the clock it is given (so the schedule is asserted, not the machine's speed)."""

from __future__ import annotations

from typing import Any, cast

from consumers.reminders import Timer
from yingke.notify import Sender


class Runs:
    def __init__(self) -> None:
        self.count = 0

    def run_once(self) -> int:
        self.count += 1
        return 0


def test_the_timer_runs_the_sender_only_when_drained_and_at_most_every_interval() -> None:
    now = [1000.0]
    runs = Runs()
    timer = Timer(cast(Sender, cast(Any, runs)), interval=5.0, monotonic=lambda: now[0])

    timer(drained=False)
    assert runs.count == 0  # a backlog first: a later event may move the reminder
    timer(drained=True)
    assert runs.count == 1
    now[0] += 4.5
    timer(drained=True)
    assert runs.count == 1  # not before the interval
    now[0] += 0.5
    timer(drained=False)
    assert runs.count == 1  # due, but the consumer has not drained
    timer(drained=True)
    assert runs.count == 2
    now[0] += 60
    timer(drained=True)
    timer(drained=True)
    assert runs.count == 3  # one run however long it waited
