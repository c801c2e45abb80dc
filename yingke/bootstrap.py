"""The composition root: the one place that builds Yingke from settings.

The API, the CLI, workers and tests all call ``build``; tests swap the clock (or any
other part) by passing it here rather than by patching modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from domain.application import Yingke
from domain.ports import Clock
from domain.values import PhoneKeyer
from yingke.settings import Settings, postgres_params
from yingke.vault import KeyStore, PostgresKeyStore, SQLiteKeyStore, Vault


def system_clock() -> datetime:
    return datetime.now(UTC)


def key_store(settings: Settings) -> KeyStore:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SQLiteKeyStore(settings.sqlite_path)
    pg = postgres_params(settings.database_url)
    conninfo = (
        f"host={pg['host']} port={pg['port']} dbname={pg['dbname']} user={pg['user']}"
        + (f" password={pg['password']}" if pg["password"] else "")
        + " connect_timeout=5"
    )
    return PostgresKeyStore(conninfo, max_size=settings.pg_pool_size)


@dataclass
class Container:
    settings: Settings
    app: Yingke
    store: KeyStore
    clock: Clock
    extras: dict[str, object] = field(default_factory=dict)

    def close(self) -> None:
        self.app.close()
        close = getattr(self.store, "close", None)
        if close:
            close()


def migrate(settings: Settings) -> None:
    """Create every table once. Workers never create tables (concurrent DDL races)."""
    store = key_store(settings)
    try:
        store.create_table()
        app = Yingke(
            settings.eventsourcing_env(create_tables=True),
            clock=system_clock,
            keyer=PhoneKeyer(settings.secret),
            vault=Vault(store, settings.secret),
        )
        app.close()
    finally:
        close = getattr(store, "close", None)
        if close:
            close()


def build(settings: Settings, clock: Clock | None = None) -> Container:
    clock = clock or system_clock
    if settings.embedded:
        # One process owns the SQLite file: migrating at start-up cannot race anyone.
        migrate(settings)
    store = key_store(settings)
    app = Yingke(
        settings.eventsourcing_env(create_tables=False),
        clock=clock,
        keyer=PhoneKeyer(settings.secret),
        vault=Vault(store, settings.secret),
    )
    return Container(settings=settings, app=app, store=store, clock=clock)
