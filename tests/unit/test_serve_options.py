"""``yingke serve`` runs uvicorn as the HTTP baseline does (bench.http_load)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from yingke import cli


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``serve`` hands uvicorn (which returns at once instead of serving)."""
    runs: list[dict[str, Any]] = []
    monkeypatch.setenv("YINGKE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("YINGKE_WORKERS", "none")
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append(options))
    return runs


@pytest.mark.parametrize(
    ("level", "access_log"), [("warning", False), ("error", False), ("info", True)]
)
def test_the_access_log_is_on_only_when_it_is_printed(
    served: list[dict[str, Any]], level: str, access_log: bool
) -> None:
    assert cli.main(["serve", "--port", "0", "--log-level", level]) == 0
    [options] = served
    assert options["access_log"] is access_log
    assert options["log_level"] == level
    assert (options["loop"], options["http"]) == ("auto", "auto")


def test_the_default_worker_count_is_the_cores_this_process_may_use() -> None:
    assert cli.usable_cores() == len(os.sched_getaffinity(0))
