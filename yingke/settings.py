"""Settings from the environment (YINGKE_*), resolved once at start-up.

``Environment`` is what an operator can set: one typed, bounded field per variable,
parsed by pydantic-settings (ADR 0023). ``Settings`` is what the running process uses:
the same values with the secrets resolved (generated into the data dir on the embedded
default) and the data dir made absolute.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PREFIX = "YINGKE_"


class ConfigurationError(RuntimeError):
    pass


def _var(default: Any, expects: str, **bounds: Any) -> Any:
    """A variable's default, its bounds, and the words a bad value is answered with."""
    return Field(default, json_schema_extra={"expects": expects}, **bounds)


_POSITIVE_INT = "a positive integer"
_SECONDS = "a non-negative number of seconds"
_INTERVAL = "a positive number of seconds"
_URL = "an http:// or https:// URL"
_URL_PATTERN = r"^https?://[^/\s]+\S*$"
_DURATION = "an ISO-8601 duration in weeks, days, hours, minutes or seconds, e.g. PT2H or P3D"


class Environment(BaseSettings):
    """Every YINGKE_* variable, its default and its bounds (README: Configuration)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")

    database_url: str | None = _var(
        None, "a URL like postgresql://user[:password]@host[:port]/dbname", repr=False
    )
    data_dir: Path = _var(Path("./var"), "a directory path")
    host: str = _var("127.0.0.1", "a host name or address")
    port: int = _var(8000, "a port number (1-65535)", ge=1, le=65535)
    admin_key: str | None = _var(None, "at least 16 characters", min_length=16, repr=False)
    secret: str | None = _var(None, "at least 16 characters", min_length=16, repr=False)
    pg_pool_size: int = _var(10, _POSITIVE_INT, gt=0)
    # How long a request waits for a pooled connection before it answers 503; the
    # store guard (yingke/guard.py) answers at once while the store is known to be down.
    pg_connect_timeout: int = _var(1, "a positive whole number of seconds", gt=0)
    # "inprocess": serve also follows the log into the views and fires deadlines;
    # "none": leave both to `yingke projections` / `yingke deadlines` processes.
    workers: Literal["inprocess", "none"] = _var("inprocess", "one of inprocess, none")
    follow_interval: float = _var(0.2, _INTERVAL, gt=0, allow_inf_nan=False)
    deadline_interval: float = _var(1.0, _INTERVAL, gt=0, allow_inf_nan=False)
    # How long a query with ?after=<position> waits for the views before a 503.
    read_wait: float = _var(2.0, _SECONDS, ge=0, allow_inf_nan=False)
    # Request bodies larger than this are refused with 413 before they are parsed.
    max_json_body: int = _var(1_048_576, "a number of bytes, at least 1024", ge=1024)
    max_import_body: int = _var(20_971_520, "a number of bytes, at least 1024", ge=1024)
    # Per-principal allowances that make unmasking buyers expensive (domain.allowance);
    # the upper bounds keep a typo from switching the cap off in effect.
    lookups_per_hour: int = _var(60, "a whole number from 1 to 10000", ge=1, le=10000)
    disclosures_per_day: int = _var(100, "a whole number from 1 to 10000", ge=1, le=10000)
    # Buyers already here that a principal's client-register imports may name per day.
    import_clashes_per_day: int = _var(100, "a whole number from 0 to 10000", ge=0, le=10000)
    # The scaled topology's Kafka side (consumers/, ADR 0010).
    kafka_bootstrap: str = _var("127.0.0.1:9092", "host:port[,host:port…]", min_length=1)
    kafka_topic: str = _var(
        "yingke.events", "a Kafka topic name", pattern=r"^[A-Za-z0-9._-]{1,249}$"
    )
    # Join consumer groups in seconds (short session timeouts): tests, single-node setups.
    kafka_fast_join: Literal["0", "1"] = _var("0", "0 or 1")
    relay_batch_size: int = _var(500, _POSITIVE_INT, gt=0)
    relay_interval: float = _var(0.2, _INTERVAL, gt=0, allow_inf_nan=False)
    consumer_batch_size: int = _var(1000, _POSITIVE_INT, gt=0)
    # Reminders (consumers/reminders.py): a WeCom group robot URL, or any JSON webhook.
    # The old name of YINGKE_NOTIFY_WEBHOOK, still read when that one is unset.
    reminder_webhook: str | None = _var(None, _URL, pattern=_URL_PATTERN)
    # Notifications to people (yingke/notify.py, ADR 0052): the group webhook that gets
    # what no person can be reached for, and the body it and personal webhooks get.
    notify_webhook: str | None = _var(None, _URL, pattern=_URL_PATTERN)
    notify_webhook_format: Literal["wecom", "json"] = _var("wecom", "one of wecom, json")
    # A notification first tried longer than this after it came due is not sent.
    notify_max_age: str = _var("P1D", _DURATION)
    # WeCom application messages (应用消息) to a person's wecom_user_id: all three of
    # corp id, secret and agent id, or none (then personal webhooks and the group).
    wecom_api_base: str = _var("https://qyapi.weixin.qq.com", _URL, pattern=_URL_PATTERN)
    wecom_corp_id: str | None = _var(None, "a WeCom corp id", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    wecom_corp_secret: str | None = _var(None, "a WeCom application secret", repr=False)
    wecom_agent_id: int | None = _var(None, _POSITIVE_INT, gt=0)
    reminder_max_attempts: int = _var(5, _POSITIVE_INT, gt=0)
    reminder_backoff: float = _var(2.0, _SECONDS, ge=0, allow_inf_nan=False)
    reminder_dead_letter_topic: str = _var(
        "yingke.reminders.dead-letter", "a Kafka topic name", pattern=r"^[A-Za-z0-9._-]{1,249}$"
    )
    reminder_due_lead: str = _var("PT2H", _DURATION)
    reminder_protection_lead: str = _var("P3D", _DURATION)
    reminder_tick: float = _var(1.0, _INTERVAL, gt=0, allow_inf_nan=False)
    # Touched by relay and consumers on every loop; a container health check reads it.
    heartbeat_file: Path | None = _var(None, "a file path")
    # Worker processes serve Prometheus metrics here when a port is set (0: any free port).
    metrics_host: str = _var("127.0.0.1", "a host name or address")
    metrics_port: int | None = _var(None, "a port number (0-65535)", ge=0, le=65535)
    # Integrity (yingke/chain.py, yingke/keys.py): KEK epochs and signing keys live here,
    # outside the database; a signed checkpoint every N events or M seconds.
    key_dir: Path | None = _var(None, "a directory path")
    checkpoint_every: int = _var(1000, _POSITIVE_INT, gt=0)
    checkpoint_seconds: float = _var(60.0, _INTERVAL, gt=0, allow_inf_nan=False)
    # Scaled topology: how long after an erasure the KEK epochs that wrapped it survive.
    kek_retire_delay: float = _var(3600.0, _SECONDS, ge=0, allow_inf_nan=False)

    @field_validator("database_url")
    @classmethod
    def _postgres(cls, value: str | None) -> str | None:
        if value is not None:
            postgres_params(value)
        return value

    @field_validator("reminder_due_lead", "reminder_protection_lead", "notify_max_age")
    @classmethod
    def _duration(cls, value: str) -> str:
        from domain.errors import InvalidInput
        from domain.values import parse_duration

        try:
            parse_duration(value, "lead")
        except InvalidInput as exc:
            raise ValueError(str(exc)) from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Values come only from the mapping load_settings was given (os.environ by
        # default): tests pass a dict and must not see the developer's shell.
        return (init_settings,)


class MappingSource(PydanticBaseSettingsSource):
    """YINGKE_* variables from a mapping; an empty value counts as unset, as it always did."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.env = env

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = env_name(field_name)
        return self.env.get(name) or None, name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for field_name, info in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(info, field_name)
            if value is not None:
                values[field_name] = value
        return values


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def read_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """Parse the variables; a bad one raises ConfigurationError in one line."""
    env = os.environ if environ is None else environ
    try:
        return Environment(**MappingSource(Environment, env)())
    except ValidationError as exc:
        raise ConfigurationError(_one_line(exc, env)) from None


def _one_line(exc: ValidationError, env: Mapping[str, str]) -> str:
    error = exc.errors()[0]
    field_name = str(error["loc"][0]) if error["loc"] else ""
    field = Environment.model_fields.get(field_name)
    if field is None:
        return str(error["msg"])
    extra = field.json_schema_extra
    expects = extra.get("expects") if isinstance(extra, dict) else None
    name = env_name(field_name)
    if not field.repr:  # a secret, or part of one: never echoed into logs
        return f"{name} must be {expects}"
    return f"{name} must be {expects or error['msg']} (got {env.get(name, '')!r})"


@dataclass(frozen=True)
class Settings:
    """The resolved settings a process runs with; field meanings are on Environment."""

    database_url: str | None
    data_dir: Path
    host: str
    port: int
    admin_key: str = field(repr=False)
    secret: bytes = field(repr=False)
    pg_pool_size: int
    pg_connect_timeout: int
    workers: str
    follow_interval: float
    deadline_interval: float
    read_wait: float
    max_json_body: int
    max_import_body: int
    lookups_per_hour: int
    disclosures_per_day: int
    import_clashes_per_day: int
    kafka_bootstrap: str
    kafka_topic: str
    kafka_fast_join: bool
    relay_batch_size: int
    relay_interval: float
    consumer_batch_size: int
    reminder_webhook: str | None
    notify_webhook: str | None
    notify_webhook_format: str
    notify_max_age: str
    wecom_api_base: str
    wecom_corp_id: str | None
    wecom_corp_secret: str | None = field(repr=False)
    wecom_agent_id: int | None
    reminder_max_attempts: int
    reminder_backoff: float
    reminder_dead_letter_topic: str
    reminder_due_lead: str
    reminder_protection_lead: str
    reminder_tick: float
    heartbeat_file: Path | None
    metrics_host: str
    metrics_port: int | None
    key_dir: Path | None
    checkpoint_every: int
    checkpoint_seconds: float
    kek_retire_delay: float

    @property
    def keys_path(self) -> Path:
        return self.key_dir or self.data_dir / "keys"

    @property
    def views_path(self) -> Path:
        return self.data_dir / "views.sqlite3"

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "yingke.sqlite3"

    def eventsourcing_env(self, create_tables: bool) -> dict[str, str]:
        flag = "y" if create_tables else "n"
        if self.database_url is None:
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": "10",
                "CREATE_TABLE": flag,
            }
        pg = postgres_params(self.database_url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": pg["dbname"],
            "POSTGRES_HOST": pg["host"],
            "POSTGRES_PORT": pg["port"],
            "POSTGRES_USER": pg["user"],
            "POSTGRES_PASSWORD": pg["password"],
            "POSTGRES_POOL_SIZE": str(self.pg_pool_size),
            "POSTGRES_MAX_OVERFLOW": str(self.pg_pool_size),
            "POSTGRES_CONNECT_TIMEOUT": str(self.pg_connect_timeout),
            "POSTGRES_PRE_PING": "y",
            "CREATE_TABLE": flag,
        }


def postgres_params(url: str) -> dict[str, str]:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres") or not parsed.path.strip("/"):
        raise ValueError(
            "YINGKE_DATABASE_URL must look like postgresql://user[:password]@host[:port]/dbname"
        )
    try:
        port = str(parsed.port or 5432)
    except ValueError as exc:  # a port that is not a number, or out of range
        raise ValueError("YINGKE_DATABASE_URL has a bad port") from exc
    return {
        "dbname": unquote(parsed.path.lstrip("/")),
        "host": parsed.hostname or "127.0.0.1",
        "port": port,
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password or ""),
    }


def _kept_secret(path: Path, make: str) -> str:
    """Generated once on first start and kept in the data dir (embedded default only)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(make + "\n")
    return make


def _directory(path: Path, variable: str) -> None:
    """Make a directory the process keeps files in: one it cannot make is a bad setting,
    answered in one line rather than a traceback from deep inside start-up."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"{variable} must be a directory this process can create ({path}: "
            f"{exc.strerror or exc})"
        ) from None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = read_environment(environ)
    data_dir = env.data_dir.resolve()
    # The embedded store and, unless YINGKE_KEY_DIR moves them, the keys live here.
    if env.database_url is None or env.key_dir is None:
        _directory(data_dir, env_name("data_dir"))
    if env.key_dir is not None:
        _directory(env.key_dir.resolve(), env_name("key_dir"))
    secret, admin_key = env.secret, env.admin_key
    if env.database_url is None:
        secret = secret or _kept_secret(data_dir / "secret.key", secrets.token_hex(32))
        admin_key = admin_key or _kept_secret(
            data_dir / "admin.key", "yk-admin-" + secrets.token_urlsafe(24)
        )
    else:
        if not secret:
            raise ConfigurationError("YINGKE_SECRET is required with PostgreSQL")
        if not admin_key:
            raise ConfigurationError("YINGKE_ADMIN_KEY is required with PostgreSQL")
    if len(secret.encode()) < 16:
        raise ConfigurationError(f"{data_dir / 'secret.key'} must hold at least 16 characters")
    if len(admin_key) < 16:
        raise ConfigurationError(f"{data_dir / 'admin.key'} must hold at least 16 characters")
    values = env.model_dump()
    values.update(
        data_dir=data_dir,
        admin_key=admin_key,
        secret=secret.encode(),
        kafka_fast_join=env.kafka_fast_join == "1",
        notify_webhook=env.notify_webhook or env.reminder_webhook,
        key_dir=env.key_dir.resolve() if env.key_dir is not None else None,
    )
    return Settings(**values)
