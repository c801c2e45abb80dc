"""Settings from the environment (YINGKE_*), resolved once at start-up."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse


class ConfigurationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    data_dir: Path
    host: str
    port: int
    admin_key: str
    secret: bytes
    pg_pool_size: int = 10
    # eventsourcing retries a failed connection 10 times, so a store that is down
    # answers 503 after about 10 × (this + 0.2) seconds.
    pg_connect_timeout: int = 2
    # "inprocess": serve also follows the log into the views and fires deadlines;
    # "none": leave both to `yingke projections` / `yingke deadlines` processes.
    workers: str = "inprocess"
    follow_interval: float = 0.2
    deadline_interval: float = 1.0
    # How long a query with ?after=<position> waits for the views before a 503.
    read_wait: float = 2.0
    # The scaled topology's Kafka side (consumers/, ADR 0010).
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_topic: str = "yingke.events"
    # Join consumer groups in seconds (short session timeouts): tests, single-node setups.
    kafka_fast_join: bool = False
    relay_batch_size: int = 500
    relay_interval: float = 0.2
    consumer_batch_size: int = 1000
    # Reminders (consumers/reminders.py): a WeCom group robot URL, or any JSON webhook.
    reminder_webhook: str | None = None
    reminder_max_attempts: int = 5
    reminder_backoff: float = 2.0
    reminder_dead_letter_topic: str = "yingke.reminders.dead-letter"
    reminder_due_lead: str = "PT2H"
    reminder_protection_lead: str = "P3D"
    reminder_tick: float = 1.0
    # Touched by relay and consumers on every loop; a container health check reads it.
    heartbeat_file: Path | None = None
    # Integrity (yingke/chain.py, yingke/keys.py): KEK epochs and signing keys live here,
    # outside the database; a signed checkpoint every N events or M seconds.
    key_dir: Path | None = None
    checkpoint_every: int = 1000
    checkpoint_seconds: float = 60.0
    # Scaled topology: how long after an erasure the KEK epochs that wrapped it survive.
    kek_retire_delay: float = 3600.0

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
        raise ConfigurationError(
            "YINGKE_DATABASE_URL must look like postgresql://user[:password]@host[:port]/dbname"
        )
    return {
        "dbname": unquote(parsed.path.lstrip("/")),
        "host": parsed.hostname or "127.0.0.1",
        "port": str(parsed.port or 5432),
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


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(name, default)
    if value not in allowed:
        raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}")
    return value


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    database_url = env.get("YINGKE_DATABASE_URL") or None
    data_dir = Path(env.get("YINGKE_DATA_DIR", "./var")).resolve()
    try:
        port = int(env.get("YINGKE_PORT", "8000"))
    except ValueError as exc:
        raise ConfigurationError("YINGKE_PORT must be a port number") from exc
    secret = env.get("YINGKE_SECRET")
    admin_key = env.get("YINGKE_ADMIN_KEY")
    if database_url is None:
        secret = secret or _kept_secret(data_dir / "secret.key", secrets.token_hex(32))
        admin_key = admin_key or _kept_secret(
            data_dir / "admin.key", "yk-admin-" + secrets.token_urlsafe(24)
        )
    else:
        postgres_params(database_url)
        if not secret:
            raise ConfigurationError("YINGKE_SECRET is required with PostgreSQL")
        if not admin_key:
            raise ConfigurationError("YINGKE_ADMIN_KEY is required with PostgreSQL")
    if len(secret.encode()) < 16:
        raise ConfigurationError("YINGKE_SECRET must be at least 16 characters")
    if len(admin_key) < 16:
        raise ConfigurationError("YINGKE_ADMIN_KEY must be at least 16 characters")
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        host=env.get("YINGKE_HOST", "127.0.0.1"),
        port=port,
        admin_key=admin_key,
        secret=secret.encode(),
        pg_pool_size=int(env.get("YINGKE_PG_POOL_SIZE", "10")),
        pg_connect_timeout=int(env.get("YINGKE_PG_CONNECT_TIMEOUT", "2")),
        workers=_choice(env, "YINGKE_WORKERS", ("inprocess", "none"), "inprocess"),
        follow_interval=float(env.get("YINGKE_FOLLOW_INTERVAL", "0.2")),
        deadline_interval=float(env.get("YINGKE_DEADLINE_INTERVAL", "1.0")),
        read_wait=float(env.get("YINGKE_READ_WAIT", "2.0")),
        kafka_bootstrap=env.get("YINGKE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        kafka_topic=env.get("YINGKE_KAFKA_TOPIC", "yingke.events"),
        kafka_fast_join=_choice(env, "YINGKE_KAFKA_FAST_JOIN", ("0", "1"), "0") == "1",
        relay_batch_size=int(env.get("YINGKE_RELAY_BATCH_SIZE", "500")),
        relay_interval=float(env.get("YINGKE_RELAY_INTERVAL", "0.2")),
        consumer_batch_size=int(env.get("YINGKE_CONSUMER_BATCH_SIZE", "1000")),
        reminder_webhook=env.get("YINGKE_REMINDER_WEBHOOK") or None,
        reminder_max_attempts=int(env.get("YINGKE_REMINDER_MAX_ATTEMPTS", "5")),
        reminder_backoff=float(env.get("YINGKE_REMINDER_BACKOFF", "2.0")),
        reminder_dead_letter_topic=env.get(
            "YINGKE_REMINDER_DEAD_LETTER_TOPIC", "yingke.reminders.dead-letter"
        ),
        reminder_due_lead=env.get("YINGKE_REMINDER_DUE_LEAD", "PT2H"),
        reminder_protection_lead=env.get("YINGKE_REMINDER_PROTECTION_LEAD", "P3D"),
        reminder_tick=float(env.get("YINGKE_REMINDER_TICK", "1.0")),
        heartbeat_file=Path(heartbeat) if (heartbeat := env.get("YINGKE_HEARTBEAT_FILE")) else None,
        key_dir=Path(key_dir).resolve() if (key_dir := env.get("YINGKE_KEY_DIR")) else None,
        checkpoint_every=int(env.get("YINGKE_CHECKPOINT_EVERY", "1000")),
        checkpoint_seconds=float(env.get("YINGKE_CHECKPOINT_SECONDS", "60")),
        kek_retire_delay=float(env.get("YINGKE_KEK_RETIRE_DELAY", "3600")),
    )
