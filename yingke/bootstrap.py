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
from projections.channel_performance import ChannelPerformance
from projections.client_overview import ClientOverview
from projections.commission_ledger import CommissionLedger
from projections.consultant_activity import ConsultantActivity
from projections.deal_pipeline import DealPipeline
from projections.departures import Departures
from projections.follow_up_tasks import FollowUpTasks
from projections.funnel_daily import FunnelDaily
from projections.lost_reasons import LostReasons
from projections.payment_collection import PaymentCollection
from projections.pool_activity import PoolActivity
from projections.principal_directory import PrincipalDirectory
from projections.protection_board import ProtectionBoard
from projections.report_log import ReportLog
from projections.runtime import Follower, Loop, PostgresViewDB, SQLiteViewDB, View, ViewDB
from projections.units import Units
from yingke.deadlines import DeadlineProcessor
from yingke.metrics import Metrics
from yingke.settings import Settings, postgres_params
from yingke.vault import KeyStore, PostgresKeyStore, SQLiteKeyStore, Vault


def system_clock() -> datetime:
    return datetime.now(UTC)


def conninfo(settings: Settings) -> str:
    assert settings.database_url is not None
    pg = postgres_params(settings.database_url)
    return (
        f"host={pg['host']} port={pg['port']} dbname={pg['dbname']} user={pg['user']}"
        + (f" password={pg['password']}" if pg["password"] else "")
        + f" connect_timeout={settings.pg_connect_timeout}"
    )


def key_store(settings: Settings) -> KeyStore:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SQLiteKeyStore(settings.sqlite_path)
    return PostgresKeyStore(
        conninfo(settings), max_size=settings.pg_pool_size, timeout=settings.pg_connect_timeout
    )


def view_db(settings: Settings) -> ViewDB:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SQLiteViewDB(settings.views_path)
    return PostgresViewDB(conninfo(settings), timeout=settings.pg_connect_timeout)


def all_views() -> list[View]:
    return [
        ClientOverview(),
        ReportLog(),
        ChannelPerformance(),
        FunnelDaily(),
        FollowUpTasks(),
        ProtectionBoard(),
        ConsultantActivity(),
        LostReasons(),
        PoolActivity(),
        PrincipalDirectory(),
        Departures(),
        Units(),
        DealPipeline(),
        PaymentCollection(),
        CommissionLedger(),
    ]


@dataclass
class Container:
    settings: Settings
    app: Yingke
    store: KeyStore
    clock: Clock
    views: ViewDB
    follower: Follower
    deadlines: DeadlineProcessor
    loops: list[Loop] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self.metrics.watch(self)

    def start_workers(self) -> None:
        """Follow the log and fire deadlines inside this process (the embedded default)."""
        self.loops = [
            Loop("views", self.follower.run_once, self.settings.follow_interval, self.metrics),
            Loop(
                "deadlines",
                self.deadlines.run_once,
                self.settings.deadline_interval,
                self.metrics,
            ),
        ]
        for loop in self.loops:
            loop.start()

    def close(self) -> None:
        for loop in self.loops:
            loop.stop()
        self.app.close()
        self.views.close()
        close = getattr(self.store, "close", None)
        if close:
            close()


def _app(settings: Settings, store: KeyStore, clock: Clock, create_tables: bool) -> Yingke:
    return Yingke(
        settings.eventsourcing_env(create_tables=create_tables),
        clock=clock,
        keyer=PhoneKeyer(settings.secret),
        vault=Vault(store, settings.secret),
    )


def migrate(settings: Settings) -> None:
    """Create every table once. Workers never create tables (concurrent DDL races)."""
    store = key_store(settings)
    views = view_db(settings)
    try:
        store.create_table()
        app = _app(settings, store, system_clock, create_tables=True)
        Follower(app, views, all_views()).migrate()
        app.close()
    finally:
        views.close()
        close = getattr(store, "close", None)
        if close:
            close()


def build(settings: Settings, clock: Clock | None = None) -> Container:
    clock = clock or system_clock
    if settings.embedded:
        # One process owns the SQLite files: migrating at start-up cannot race anyone.
        migrate(settings)
    store = key_store(settings)
    app = _app(settings, store, clock, create_tables=False)
    views = view_db(settings)
    follower = Follower(app, views, all_views())
    return Container(
        settings=settings,
        app=app,
        store=store,
        clock=clock,
        views=views,
        follower=follower,
        deadlines=DeadlineProcessor(app, views, follower),
    )
