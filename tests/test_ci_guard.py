"""On CI a skipped test, or a run with no test, fails the session; locally a skip is fine.

Each case runs pytest in a child process on a throwaway test file, with only the guard
(tests/ci_guard.py) loaded, and reads its exit status and summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PASSES = "def test_passes():\n    assert True\n"
SKIPS = "import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('the tool is missing')\n"


def run(tmp_path: Path, source: str, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(source)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keep the project's settings out
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the guard: a quicker child
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_guard", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_fails_the_run_on_ci_and_names_the_test(tmp_path: Path) -> None:
    result = run(tmp_path, PASSES + "\n\n" + SKIPS, ci=True)

    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "no test may skip on CI" in result.stdout
    assert "test_sample.py::test_needs_a_tool: the tool is missing" in result.stdout


def test_a_module_skipped_at_collection_fails_the_run_on_ci(tmp_path: Path) -> None:
    source = "import pytest\n\npytest.skip('no broker', allow_module_level=True)\n" + PASSES
    result = run(tmp_path, source, ci=True)

    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "test_sample.py: no broker" in result.stdout


def test_a_run_without_tests_fails_on_ci(tmp_path: Path) -> None:
    result = run(tmp_path, "# nothing here yet\n", ci=True)

    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "no test ran" in result.stdout


def test_locally_a_skip_is_reported_and_the_run_passes(tmp_path: Path) -> None:
    result = run(tmp_path, PASSES + "\n\n" + SKIPS, ci=False)

    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert "1 passed, 1 skipped" in result.stdout


def test_on_ci_a_run_where_everything_ran_passes(tmp_path: Path) -> None:
    result = run(tmp_path, PASSES, ci=True)

    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert "no test may skip" not in result.stdout
