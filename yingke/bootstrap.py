"""The composition root: the one place that builds Yingke from settings.

The API, the CLI, workers and tests all call ``build``; tests swap the clock (or any
other part) by passing it here rather than by patching modules. ``build`` makes the one
event store, the one unit of work over it, and each capability service with exactly the
services it depends on; callers take the service they need from the ``Container``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from domain.application import EventStore
from domain.client import Client
from domain.commission import CommissionPolicy
from domain.policy import ProjectPolicy
from domain.ports import Clock, PersonalDataVault
from domain.principal import Principal
from domain.services.client_import import ClientImport
from domain.services.clients import Clients
from domain.services.contact import BuyerContact
from domain.services.deals import Deals
from domain.services.departures import Departures as DepartureService
from domain.services.disputes import Disputes
from domain.services.followups import FollowUps
from domain.services.policies import Policies
from domain.services.pool import Pool
from domain.services.principals import Principals
from domain.services.reports import Reports
from domain.services.units import Units as UnitService
from domain.services.uow import UnitOfWork
from domain.services.visits import Visits
from domain.services.watched import WatchedStreams
from domain.services.whatif import WhatIf
from domain.values import PhoneKeyer
from projections.channel_performance import ChannelPerformance
from projections.client_overview import ClientOverview
from projections.client_tags import ClientTags
from projections.commission_ledger import CommissionLedger
from projections.consultant_activity import ConsultantActivity
from projections.contact_disclosures import ContactDisclosures
from projections.deal_pipeline import DealPipeline
from projections.departures import Departures
from projections.follow_up_tasks import FollowUpTasks
from projections.funnel_daily import FunnelDaily
from projections.lookup_audit import LookupAudit
from projections.lost_reasons import LostReasons
from projections.notification_outbox import NotificationOutbox
from projections.payment_collection import PaymentCollection
from projections.pending_decisions import PendingDecisions
from projections.pool_activity import PoolActivity
from projections.principal_directory import PrincipalDirectory
from projections.protection_board import ProtectionBoard
from projections.report_log import ReportLog
from projections.rule_tasks import RuleTasks
from projections.runtime import Follower, Loop, PostgresViewDB, SQLiteViewDB, View, ViewDB
from projections.units import Units
from yingke import loop_status
from yingke.chain import POSTGRES_TOPIC, SQLITE_TOPIC, Chained, ChainedPostgresRecorder, backfill
from yingke.deadlines import DeadlineProcessor
from yingke.guard import StoreGuard, StoreProbe, drop_retries
from yingke.jobs import JobRunner, JobStore
from yingke.keys import KeyDir
from yingke.metrics import Metrics
from yingke.notify import PrincipalDirectory as Contacts
from yingke.notify import Sender, sender_from
from yingke.notify import migrate as migrate_delivery
from yingke.pools import check_if_idle, ping_only_idle
from yingke.settings import Settings, postgres_params
from yingke.snapshots import Snapshots, snapshot_key
from yingke.snapshots import migrate as migrate_snapshots
from yingke.streams import stream_heads, streams_with
from yingke.vault import KeyStore, PostgresKeyStore, SQLiteKeyStore, Vault
from yingke.wake import CommitListener


def system_clock() -> datetime:
    return datetime.now(UTC)


def conninfo(settings: Settings) -> str:
    assert settings.database_url is not None
    pg = postgres_params(settings.database_url)
    return (
        f"host={pg['host']} port={pg['port']} dbname={pg['dbname']} user={pg['user']}"
        + (f" password={pg['password']}" if pg["password"] else "")
        # libpq counts whole seconds and treats less than 2 as 2.
        + f" connect_timeout={max(2, settings.pg_connect_timeout)}"
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
    return PostgresViewDB(
        conninfo(settings), timeout=settings.pg_connect_timeout, check=check_if_idle
    )


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
        PendingDecisions(),
        ClientTags(),
        Units(),
        DealPipeline(),
        PaymentCollection(),
        CommissionLedger(),
        ContactDisclosures(),
        LookupAudit(),
        RuleTasks(),
        NotificationOutbox(),
    ]


@dataclass
class Services:
    """Every capability service, wired over one unit of work on one event store."""

    store: EventStore
    uow: UnitOfWork
    clock: Clock
    principals: Principals
    policies: Policies
    clients: Clients
    reports: Reports
    visits: Visits
    followups: FollowUps
    pool: Pool
    departures: DepartureService
    units: UnitService
    deals: Deals
    disputes: Disputes
    client_import: ClientImport
    contact: BuyerContact
    whatif: WhatIf

    def position(self) -> int:
        return self.uow.position()


def services(
    store: EventStore, clock: Clock, keyer: PhoneKeyer, vault: PersonalDataVault
) -> Services:
    recorder = store.recorder
    if isinstance(vault, Vault) and isinstance(recorder, ChainedPostgresRecorder):
        # A new buyer's key commits in the batch transaction of the events sealed under
        # it (ADR 0065): no commit of its own, and none left by a refused save.
        vault.defer_new_keys = True
        recorder.new_keys = vault
    scope = vault.unit if isinstance(vault, Vault) else None
    uow = UnitOfWork(store, clock, attempt_scope=scope)
    # One watcher of the log for the small hot streams every request reads.
    watched = WatchedStreams(uow, [Principal, ProjectPolicy, CommissionPolicy])
    principals = Principals(uow, watched)
    policies = Policies(uow, watched)
    # Long streams fold from sealed snapshots bound to the hash chain (ADR 0060).
    snapshots = Snapshots(uow, snapshot_key(keyer.digest("yingke-snapshots")))
    clients = Clients(uow, clock, keyer, vault, snapshots)
    deals = Deals(uow, clock, vault, policies, clients)
    return Services(
        store=store,
        uow=uow,
        clock=clock,
        principals=principals,
        policies=policies,
        clients=clients,
        reports=Reports(uow, clock, keyer, vault, policies, clients),
        visits=Visits(uow, keyer, vault, policies, principals, clients),
        followups=FollowUps(uow, vault, policies, principals, clients),
        pool=Pool(uow, vault, policies, principals, clients),
        departures=DepartureService(uow, policies, principals, clients),
        units=UnitService(uow),
        deals=deals,
        disputes=Disputes(uow, clock, vault, policies, principals, clients, deals),
        client_import=ClientImport(
            uow,
            clock,
            keyer,
            vault,
            policies,
            principals,
            stream_heads(store),
            streams_with(store, Client.PersonalDataErased),
        ),
        contact=BuyerContact(uow, keyer, vault, clients),
        whatif=WhatIf(store, clock),
    )


# After a wake-up the follower waits this long before reading the log, so that at 200
# reports/s one batch carries the saves of those milliseconds rather than one each.
COALESCE_SECONDS = 0.01


@dataclass
class Container(Services):
    """The services plus what runs beside them: settings, keys, views and workers."""

    settings: Settings = field(kw_only=True)
    keys: KeyStore = field(kw_only=True)
    views: ViewDB = field(kw_only=True)
    follower: Follower = field(kw_only=True)
    deadlines: DeadlineProcessor = field(kw_only=True)
    guard: StoreGuard = field(default_factory=lambda: StoreGuard(lambda: None), kw_only=True)
    # Integrity (ADR 0035-0037): KEK epochs and signing keys outside the database, the
    # vault that retires epochs, and the keyer that derives receipt salts.
    key_dir: KeyDir = field(kw_only=True)
    vault: Vault = field(kw_only=True)
    keyer: PhoneKeyer = field(kw_only=True)
    loops: list[Loop] = field(default_factory=list, kw_only=True)
    metrics: Metrics = field(default_factory=Metrics, kw_only=True)
    jobs: JobStore = field(kw_only=True)
    job_runner: JobRunner = field(kw_only=True)
    notifier: Sender | None = field(default=None, kw_only=True)
    # Set when events commit (here, or in another process on PostgreSQL): the follower
    # then starts a batch at once instead of at its next poll (yingke/wake.py).
    wake: threading.Event = field(default_factory=threading.Event, kw_only=True)
    listener: CommitListener | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        self.metrics.watch(self)
        # Every loop's state goes to the shared table too, for every process to show.
        self.metrics.report_to(loop_status.LoopStatus(self.views))
        if self.notifier is None:
            # Delivery reads each person's contact from their own stream (ADR 0052).
            directory = Contacts(self.principals.principal)
            self.notifier = sender_from(
                self.settings, self.views, directory, self.clock, self.metrics
            )

    def deadlines_step(self) -> int:
        """Fire deadlines, and retire KEK epochs whose erasure delay has passed."""
        self.vault.sweep()
        fired: int = self.deadlines.run_once()
        return fired

    def follow_loop(self) -> Loop:
        """The follower's loop, woken by commits: this process's saves and, on
        PostgreSQL, every process's (LISTEN on the events table's channel)."""
        recorder = self.store.recorder
        if isinstance(recorder, Chained):
            recorder.on_commit = self.wake.set
        if isinstance(recorder, ChainedPostgresRecorder) and self.listener is None:
            info = conninfo(self.settings)
            self.listener = CommitListener(
                lambda: psycopg.connect(info, autocommit=True),
                recorder.channel_name,
                self.wake,
                retry=self.settings.follow_interval,
            )
            self.listener.start()
        return Loop(
            "views",
            self.follower.run_once,
            self.settings.follow_interval,
            self.metrics,
            wake=self.wake,
            coalesce=COALESCE_SECONDS,
            # A short batch read the whole log: asking again at once only cost an empty
            # transaction per wake-up.
            full=self.follower.batch_size,
        )

    def start_workers(self) -> None:
        """Follow the log and fire deadlines inside this process (the embedded default)."""
        self.loops = [
            self.follow_loop(),
            Loop(
                "deadlines",
                self.deadlines_step,
                self.settings.deadline_interval,
                self.metrics,
            ),
        ]
        if self.notifier is not None:
            # Without Kafka, notifications are delivered from here (the embedded default).
            self.loops.append(
                Loop("notify", self.notifier.run_once, self.settings.reminder_tick, self.metrics)
            )
        for loop in self.loops:
            loop.start()

    def close(self) -> None:
        self.guard.stop()
        for loop in self.loops:
            loop.stop()
        if self.listener is not None:
            self.listener.stop()
        if self.metrics.status is not None:
            self.metrics.status.forget()
        self.job_runner.wait()
        close_writer = getattr(self.store.recorder, "close_writer", None)
        if close_writer is not None:
            close_writer()
        self.store.close()
        self.views.close()
        close = getattr(self.keys, "close", None)
        if close:
            close()


def _store(settings: Settings, create_tables: bool) -> EventStore:
    env = settings.eventsourcing_env(create_tables=create_tables)
    # The chained recorders write the hash chain in each append's transaction (ADR 0035).
    env["APPLICATION_RECORDER_TOPIC"] = SQLITE_TOPIC if settings.embedded else POSTGRES_TOPIC
    store = EventStore(env)
    recorder = store.recorder
    assert isinstance(recorder, Chained)
    recorder.configure(
        KeyDir(settings.keys_path), settings.checkpoint_every, settings.checkpoint_seconds
    )
    return store


def _vault(settings: Settings, keys: KeyStore) -> Vault:
    return Vault(
        keys,
        settings.secret,
        KeyDir(settings.keys_path),
        retire_delay=0.0 if settings.embedded else settings.kek_retire_delay,
    )


def migrate(settings: Settings) -> None:
    """Create every table once. Workers never create tables (concurrent DDL races)."""
    store = key_store(settings)
    views = view_db(settings)
    try:
        store.create_table()
        events = _store(settings, create_tables=True)
        # Events stored before the chain existed get chained, in log order (ADR 0035).
        backfill(events.recorder)
        # Snapshots of other code, and pickled ones from before ADR 0068, are deleted.
        migrate_snapshots(events.recorder)
        # Keys wrapped before KEK epochs existed move to an epoch that can be destroyed.
        _vault(settings, store).migrate_legacy()
        Follower(events, views, all_views()).migrate()
        JobStore(views).migrate()
        migrate_delivery(views)
        loop_status.migrate(views)
        events.close()
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
    keys = key_store(settings)
    try:
        store = _store(settings, create_tables=False)
    except Exception:
        close = getattr(keys, "close", None)
        if close:
            close()
        raise
    keyer = PhoneKeyer(settings.secret)
    vault = _vault(settings, keys)
    parts = services(store, clock, keyer, vault)
    views = view_db(settings)
    follower = Follower(store, views, all_views())
    guard = StoreGuard(lambda: None)
    if not settings.embedded:
        drop_retries(store.recorder)
        ping_only_idle(getattr(store.recorder, "datastore", None))
        guard = StoreGuard(store_probe(settings))
        guard.start()
    return Container(
        **vars(parts),
        settings=settings,
        keys=keys,
        views=views,
        follower=follower,
        deadlines=DeadlineProcessor(parts, views, follower),
        guard=guard,
        jobs=JobStore(views),
        job_runner=JobRunner(JobStore(views)),
        key_dir=KeyDir(settings.keys_path),
        vault=vault,
        keyer=keyer,
    )


def store_probe(settings: Settings) -> StoreProbe:
    """One query on a connection kept for probing: what every request needs from the store."""
    return StoreProbe(conninfo(settings))
