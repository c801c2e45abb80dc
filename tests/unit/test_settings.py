"""Settings: every variable typed and bounded; a bad value is one clear line, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from yingke.settings import ConfigurationError, Environment, env_name, load_settings


def _load(tmp_path: Path, **env: str) -> object:
    return load_settings({"YINGKE_DATA_DIR": str(tmp_path), **env})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "YINGKE_PG_POOL_SIZE",
            "ten",
            "YINGKE_PG_POOL_SIZE must be a positive integer (got 'ten')",
        ),
        (
            "YINGKE_READ_WAIT",
            "-5",
            "YINGKE_READ_WAIT must be a non-negative number of seconds (got '-5')",
        ),
        (
            "YINGKE_RELAY_BATCH_SIZE",
            "0",
            "YINGKE_RELAY_BATCH_SIZE must be a positive integer (got '0')",
        ),
        ("YINGKE_WORKERS", "all", "YINGKE_WORKERS must be one of inprocess, none (got 'all')"),
        ("YINGKE_PORT", "70000", "YINGKE_PORT must be a port number (1-65535) (got '70000')"),
        (
            "YINGKE_FOLLOW_INTERVAL",
            "0",
            "YINGKE_FOLLOW_INTERVAL must be a positive number of seconds (got '0')",
        ),
        ("YINGKE_KAFKA_FAST_JOIN", "yes", "YINGKE_KAFKA_FAST_JOIN must be 0 or 1 (got 'yes')"),
        (
            "YINGKE_REMINDER_WEBHOOK",
            "qyapi.weixin.qq.com/send",
            "YINGKE_REMINDER_WEBHOOK must be an http:// or https:// URL "
            "(got 'qyapi.weixin.qq.com/send')",
        ),
        ("YINGKE_METRICS_PORT", "-1", "YINGKE_METRICS_PORT must be a port number (0-65535)"),
        (
            "YINGKE_LOOKUPS_PER_HOUR",
            "0",
            "YINGKE_LOOKUPS_PER_HOUR must be a whole number from 1 to 10000 (got '0')",
        ),
        (
            "YINGKE_DISCLOSURES_PER_DAY",
            "lots",
            "YINGKE_DISCLOSURES_PER_DAY must be a whole number from 1 to 10000 (got 'lots')",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _load(tmp_path, **{name: value})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("lead", ["P1M", "PT0S", "2h"])
def test_reminder_leads_are_iso_durations_of_fixed_length(tmp_path: Path, lead: str) -> None:
    with pytest.raises(ConfigurationError, match="YINGKE_REMINDER_DUE_LEAD must be an ISO-8601"):
        _load(tmp_path, YINGKE_REMINDER_DUE_LEAD=lead)


def test_secrets_and_database_passwords_are_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as short:
        _load(tmp_path, YINGKE_SECRET="hunter2")
    assert str(short.value) == "YINGKE_SECRET must be at least 16 characters"
    with pytest.raises(ConfigurationError) as url:
        _load(tmp_path, YINGKE_DATABASE_URL="mysql://root:hunter2@db/crm")
    assert "hunter2" not in str(url.value)
    assert str(url.value).startswith("YINGKE_DATABASE_URL must be a URL like postgresql://")


def test_postgres_needs_both_secrets(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1/yingke"
    with pytest.raises(ConfigurationError, match="YINGKE_SECRET is required"):
        _load(tmp_path, YINGKE_DATABASE_URL=url)
    with pytest.raises(ConfigurationError, match="YINGKE_ADMIN_KEY is required"):
        _load(tmp_path, YINGKE_DATABASE_URL=url, YINGKE_SECRET="s" * 16)


def test_defaults_and_typed_values(tmp_path: Path) -> None:
    settings = load_settings({"YINGKE_DATA_DIR": str(tmp_path)})
    assert (settings.pg_pool_size, settings.read_wait, settings.relay_batch_size) == (10, 2.0, 500)
    assert settings.workers == "inprocess" and settings.kafka_fast_join is False
    assert settings.metrics_port is None and settings.metrics_host == "127.0.0.1"
    assert settings.data_dir == tmp_path.resolve()
    assert len(settings.admin_key) >= 16 and (tmp_path / "admin.key").exists()
    given = _load(
        tmp_path,
        YINGKE_PG_POOL_SIZE="3",
        YINGKE_READ_WAIT="0",
        YINGKE_KAFKA_FAST_JOIN="1",
        YINGKE_WORKERS="none",
        YINGKE_METRICS_PORT="9100",
        YINGKE_REMINDER_WEBHOOK="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
    )
    assert given == load_settings(
        {
            "YINGKE_DATA_DIR": str(tmp_path),
            "YINGKE_PG_POOL_SIZE": "3",
            "YINGKE_READ_WAIT": "0.0",
            "YINGKE_KAFKA_FAST_JOIN": "1",
            "YINGKE_WORKERS": "none",
            "YINGKE_METRICS_PORT": "9100",
            "YINGKE_REMINDER_WEBHOOK": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
        }
    )


def test_an_empty_value_counts_as_unset(tmp_path: Path) -> None:
    settings = _load(tmp_path, YINGKE_DATABASE_URL="", YINGKE_PG_POOL_SIZE="", YINGKE_HOST="")
    assert settings == load_settings({"YINGKE_DATA_DIR": str(tmp_path)})


def test_the_shell_environment_is_not_read_when_a_mapping_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YINGKE_PG_POOL_SIZE", "ten")
    assert load_settings({"YINGKE_DATA_DIR": str(tmp_path)}).pg_pool_size == 10
    with pytest.raises(ConfigurationError, match="YINGKE_PG_POOL_SIZE"):
        load_settings()


@pytest.mark.parametrize("name", ["YINGKE_DATA_DIR", "YINGKE_KEY_DIR"])
def test_a_directory_that_cannot_be_made_is_one_line_naming_the_variable(
    tmp_path: Path, name: str
) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a directory")
    env = {"YINGKE_DATA_DIR": str(tmp_path / "var"), name: str(taken / "sub")}
    with pytest.raises(ConfigurationError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith(f"{name} must be a directory this process can create")
    assert str(taken / "sub") in message and "\n" not in message


def test_every_variable_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [env_name(f) for f in Environment.model_fields if env_name(f) not in readme]
    assert missing == []


@pytest.mark.parametrize(
    ("bad", "line"),
    [
        (
            {"YINGKE_PG_POOL_SIZE": "ten"},
            "yingke: YINGKE_PG_POOL_SIZE must be a positive integer (got 'ten')",
        ),
        (
            {"YINGKE_DATA_DIR": "{file}/var"},
            "yingke: YINGKE_DATA_DIR must be a directory this process can create "
            "({file}/var: Not a directory)",
        ),
    ],
)
def test_the_cli_answers_a_bad_value_with_one_line_and_exit_code_2(
    tmp_path: Path, bad: dict[str, str], line: str
) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a directory")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("YINGKE_")},
        "YINGKE_DATA_DIR": str(tmp_path),
        **{k: v.format(file=taken) for k, v in bad.items()},
    }
    done = subprocess.run(
        [sys.executable, "-m", "yingke.cli", "deadlines"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == line.format(file=taken)
