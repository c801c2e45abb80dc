"""No silent skips and no empty runs on CI.

Locally a missing PostgreSQL, broker or tool skips the tests that need it. On CI
(``CI=true``) a skip would mean a part of the system went untested while the run still
looked green, so every skip fails the session with a list of what skipped, and so does a
session that ran no test at all (pytest's exit status 5).
"""

from __future__ import annotations

import os
from typing import Any

import pytest


class NoSkipsOnCI:
    """Registered only with CI=true: collects every skip, then fails the session."""

    def __init__(self) -> None:
        self.skipped: list[str] = []
        self.verdict = ""

    def _note(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.skipped.append(f"{report.nodeid}: {reason.removeprefix('Skipped: ')}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.skipped:
            self.verdict = (
                f"CI=true: {len(self.skipped)} test(s) skipped; no test may skip on CI:\n  "
                + "\n  ".join(self.skipped)
            )
        elif session.testscollected == 0 or exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            self.verdict = "CI=true: no test ran, which proves nothing"
        if self.verdict and session.exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.verdict:
            terminalreporter.section("CI forbids skips", sep="=", red=True, bold=True)
            terminalreporter.line(self.verdict, red=True)


def install(config: pytest.Config) -> None:
    if os.environ.get("CI") == "true":
        config.pluginmanager.register(NoSkipsOnCI(), "yingke-no-skips-on-ci")


def pytest_configure(config: pytest.Config) -> None:
    """So that ``-p tests.ci_guard`` works on its own (as tests/test_ci_guard.py runs it)."""
    install(config)
