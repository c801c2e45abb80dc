"""The ``yingke`` command, on typer with rich progress bars (ADR 0041)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from yingke.settings import ConfigurationError, Settings, load_settings
from yingke.sheets import commands as sheet_commands

err = Console(stderr=True)
app = typer.Typer(
    name="yingke",
    help="赢客 Yingke: the event-sourced CRM of a sales office (案场) and its channels (渠道).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(sheet_commands.imports, name="import")
app.command(name="export")(sheet_commands.export)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides YINGKE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides YINGKE_PORT")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="HTTP processes, each with its own connections and event writer "
            "(default: the cores this process may use, on PostgreSQL; always 1 on SQLite)",
        ),
    ] = None,
) -> None:
    """Run the HTTP API (服务); embedded default: SQLite under ./var."""
    import uvicorn

    from api.app import create_app, create_waiting_app
    from yingke.bootstrap import Container, build
    from yingke.guard import STORE_ERRORS

    settings = load_settings()
    host = host or settings.host
    port = port or settings.port
    processes = workers or (1 if settings.embedded else usable_cores())
    # As the HTTP baseline runs (bench.http_load): uvloop and httptools (uvicorn picks them
    # when installed, as uvicorn[standard] does) and no access log unless it is printed:
    # below info the log is never shown, yet uvicorn built its arguments for every answer.
    options: dict[str, Any] = {
        "log_level": log_level,
        "access_log": log_level.lower() in ("trace", "debug", "info"),
        "loop": "auto",
        "http": "auto",
    }
    if processes > 1 and settings.embedded:
        raise typer.BadParameter("more than one worker needs PostgreSQL: one process owns SQLite")
    try:
        container: Container | None = build(settings)
    except STORE_ERRORS as exc:
        # Containers restart a process that exits; one that stays up and reports not
        # ready lets the orchestrator wait for the database instead.
        logging.getLogger("yingke").error(
            "event store unreachable at start (%s); serving 503 (not ready) until it answers",
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        container = None
    if container is None:
        api = create_waiting_app(settings, lambda: build(settings))
    else:
        if settings.workers == "inprocess":
            container.start_workers()
        api = create_app(container)
    where = f"http://{host}:{port}"
    store = f"SQLite at {settings.sqlite_path}" if settings.embedded else "PostgreSQL"
    print(f"Yingke listening on {where}  (events: {store})", flush=True)
    print(f"  API docs: {where}/docs   health: {where}/healthz", flush=True)
    if settings.embedded:
        print(f"  admin key (kept in {settings.data_dir / 'admin.key'}): {settings.admin_key}")
        print(
            f"  try: curl -H 'Authorization: Bearer {settings.admin_key}' "
            f"{where}/v1/projects/demo/policy",
            flush=True,
        )
    if processes > 1:
        # This process keeps the in-process workers (follower, deadlines) and supervises;
        # each HTTP process builds its own container and serves requests only.
        print(f"  {processes} HTTP processes", flush=True)
        if container is not None:
            # The loops run here, where no HTTP process can see them: like any worker
            # process, this one shows them on YINGKE_METRICS_PORT when it is set.
            from yingke import metrics

            metrics.serve(container.metrics, settings, "serve")
        os.environ["YINGKE_WORKERS"] = "none"
        try:
            uvicorn.run(
                "api.app:create_app_from_env",
                factory=True,
                host=host,
                port=port,
                workers=processes,
                **options,
            )
        finally:
            api.state.guard.stop()
            if api.state.container is not None:
                api.state.container.close()
        return
    try:
        uvicorn.run(api, host=host, port=port, **options)
    finally:
        api.state.guard.stop()
        if api.state.container is not None:
            api.state.container.close()


def usable_cores() -> int:
    """The cores this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


MetricsPort = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=65535,
        help="Serve Prometheus /metrics on this port (overrides YINGKE_METRICS_PORT; 0: any)",
    ),
]


def _settings(metrics_port: int | None) -> Settings:
    """The environment's settings, with the command line's overrides."""
    settings = load_settings()
    return settings if metrics_port is None else replace(settings, metrics_port=metrics_port)


def _run_loop(step_name: str, metrics_port: int | None) -> None:
    """Run one worker in the foreground until SIGTERM or Ctrl-C."""
    from projections.runtime import Loop
    from yingke import metrics
    from yingke.bootstrap import build

    settings = _settings(metrics_port)
    container = build(settings)
    step = container.follower.run_once if step_name == "views" else container.deadlines_step
    interval = settings.follow_interval if step_name == "views" else settings.deadline_interval
    if step_name == "views":
        loop = container.follow_loop()
    else:
        loop = Loop(step_name, step, interval, container.metrics)
    container.loops.append(loop)  # closed with the container
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    process = "projections" if step_name == "views" else "deadlines"
    metrics.serve(container.metrics, settings, process)
    loop.start()
    print(f"yingke {step_name}: running (every {interval}s); Ctrl-C or SIGTERM stops", flush=True)
    try:
        while not stopped.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        container.close()


@app.command()
def migrate() -> None:
    """Create the tables (建表); run once before scaled workers start."""
    from yingke.bootstrap import migrate as create_tables

    settings = load_settings()
    with err.status("creating the event store, vault and view tables…"):
        create_tables(settings)
    print("tables are in place", flush=True)


@app.command()
def projections(
    action: Annotated[
        str, typer.Argument(help="follow (default) or rebuild", show_default=False)
    ] = "follow",
    name: Annotated[
        str | None, typer.Argument(help="rebuild only: the view, e.g. client_overview")
    ] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Follow the event log into the BI views (报表), or `rebuild <view>` one from zero."""
    if action == "follow" and name is None:
        _run_loop("views", metrics_port)
        return
    if action != "rebuild":
        raise typer.BadParameter(f"{action!r}: use follow or rebuild", param_hint="ACTION")
    _rebuild(name)


def _rebuild(name: str | None) -> None:
    from projections.runtime import rebuild
    from yingke.bootstrap import build

    container = build(load_settings())
    try:
        views = {v.name: v for v in container.follower.views}
        if name not in views:
            err.print(f"yingke: unknown view {name!r}; one of: {', '.join(views)}")
            raise typer.Exit(2)
        total = container.store.recorder.max_notification_id() or 0
        with sheet_commands.bar(f"rebuilding {name}", total, "events", cumulative=True) as advance:
            report = rebuild(container.store, container.views, views[name], progress=advance)
        print(
            f"rebuilt {report.view}: {report.events} events in {report.seconds:.2f}s "
            f"({report.events_per_second:,.0f} events/s), position {report.position}, "
            f"rows {report.rows}",
            flush=True,
        )
    finally:
        container.close()


@app.command()
def deadlines(metrics_port: MetricsPort = None) -> None:
    """Fire report, protection (保护期), inactivity, dormancy (待激活) and escalation
    deadlines; retire due KEK epochs."""
    _run_loop("deadlines", metrics_port)


@app.command()
def verify(
    start: Annotated[int, typer.Option("--from", min=1, help="First log position")] = 1,
    progress: Annotated[bool, typer.Option(help="Progress bar even if not a terminal")] = False,
    bundle: Annotated[
        Path | None,
        typer.Option(
            help="An evidence bundle (证据包) as downloaded, PDF or JSON: check that the "
            "chain entries, events (type, version, time), withheld versions' kinds and "
            "checkpoint it prints are those of the verified store"
        ),
    ] = None,
) -> None:
    """Recompute every hash chain and signed checkpoint (校验); exit 1 naming the first break."""
    from yingke.bootstrap import build
    from yingke.bundle_check import BundleMismatch, check_bundle, read_bundle
    from yingke.chain import ChainBroken, verify_log

    container = build(load_settings())
    total = max(0, (container.position() or 0) - start + 1)
    started = time.monotonic()
    try:
        with sheet_commands.bar("verifying", total, "events", quiet=not progress) as advance:
            report = verify_log(
                container.store.recorder, container.key_dir, start=start, progress=advance
            )
        print(
            f"verified {report.events:,} events and {report.checkpoints} signed checkpoints "
            f"in {time.monotonic() - started:.1f}s; head {report.head_position} "
            f"log hash {report.head_log_hash}",
            flush=True,
        )
        if bundle is not None:
            # After the store verified: the bundle's hashes are checked against rows that
            # were just recomputed, not merely against what the table says.
            matched = check_bundle(container.store, container.key_dir, read_bundle(bundle))
            print(f"bundle {bundle.name}: {matched}", flush=True)
    except ChainBroken as broken:
        print(
            f"BROKEN: stream {broken.stream} version {broken.version} "
            f"position {broken.position}: {broken.reason}",
            flush=True,
        )
        raise typer.Exit(1) from None
    except BundleMismatch as mismatch:
        print(f"BUNDLE: {mismatch}", flush=True)
        raise typer.Exit(1) from None
    finally:
        container.close()


@app.command()
def keys(
    action: Annotated[str, typer.Argument(help="rotate, sweep or list")],
    signing: Annotated[bool, typer.Option(help="rotate: the signing key too")] = False,
) -> None:
    """Key-encryption epochs and signing keys (密钥): rotate, sweep due retirements, list."""
    from yingke.bootstrap import build

    if action not in ("rotate", "sweep", "list"):
        raise typer.BadParameter(f"{action!r}: use rotate, sweep or list", param_hint="ACTION")
    container = build(load_settings())
    try:
        vault = container.vault
        key_dir = container.key_dir
        if action == "rotate":
            epoch = vault.rotate()
            print(f"KEK epoch {epoch} in use; every older epoch destroyed", flush=True)
            if signing:
                key_id, _ = key_dir.new_signing_key()
                print(f"signing key {key_id} in use; older ones stay published", flush=True)
        elif action == "sweep":
            ran = vault.sweep()
            print("retired due KEK epochs" if ran else "nothing due", flush=True)
        else:
            print(f"KEK epochs present: {key_dir.epochs()}")
            for info in key_dir.signing_keys():
                print(f"signing key {info.key_id} valid {info.valid_from} .. {info.valid_until}")
    finally:
        container.close()


@app.command()
def relay(metrics_port: MetricsPort = None) -> None:
    """Publish the event log to Kafka (one relay publishes, others stand by)."""
    from consumers.relay import main as relay_main

    raise typer.Exit(relay_main(settings=_settings(metrics_port)))


@app.command()
def consume(
    name: Annotated[str, typer.Argument(help="views or reminders")],
    views: Annotated[
        str | None, typer.Option(help="views only: a comma-separated subset (its own group)")
    ] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Run a Kafka consumer group: the BI views, or reminders (提醒)."""
    if name == "views":
        from consumers.views import main as views_main

        raise typer.Exit(views_main(views, settings=_settings(metrics_port)))
    if name != "reminders":
        raise typer.BadParameter(f"{name!r}: use views or reminders", param_hint="NAME")
    from consumers.reminders import main as reminders_main

    raise typer.Exit(reminders_main(settings=_settings(metrics_port)))


@app.command()
def doctor() -> None:
    """List buyers whose stored masked phone holds non-ASCII digits; exit 1 if any."""
    from yingke.bootstrap import build
    from yingke.doctor import foreign_phone_clients

    container = build(load_settings())
    try:
        found = 0
        for suspect in foreign_phone_clients(container.store):
            found += 1
            print(
                f"{suspect.client_id}\t{suspect.project_id}\t{suspect.phone_masked!a}\t"
                f"registered {suspect.registered_at}",
                flush=True,
            )
        print(f"{found} client(s) with non-ASCII characters in the stored phone", flush=True)
    finally:
        container.close()
    if found:
        raise typer.Exit(1)


def _override(text: str) -> tuple[str, Any]:
    """``name=value``: JSON when it parses (numbers, booleans, maps), else the text."""
    import json

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise typer.BadParameter(f"{text!r}: use name=value, e.g. protection=P15D")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value


@app.command(name="what-if")
def what_if(
    project: Annotated[str, typer.Option(help="The project (楼盘) to replay")],
    start: Annotated[
        datetime,
        typer.Option("--from", help="Window start, UTC", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    ],
    end: Annotated[
        datetime,
        typer.Option(
            "--to", help="Window end (exclusive), UTC", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]
        ),
    ],
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="A policy override, name=value (repeat), e.g. protection=P15D"),
    ] = None,
    xlsx: Annotated[
        Path | None, typer.Option(help="Write every change to this .xlsx, one row each")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write the whole result as JSON here")] = None,
    progress: Annotated[bool, typer.Option(help="Progress bars even if not a terminal")] = False,
) -> None:
    """What if the rules had been different? Replay the project's buyers active in the
    window under the overrides and list the decisions that would change (read-only)."""
    import json

    from domain.errors import InvalidInput
    from yingke.bootstrap import build
    from yingke.sheets.export import write_xlsx

    overrides = dict(_override(s) for s in settings or [])
    since, until = start.replace(tzinfo=start.tzinfo or UTC), end.replace(tzinfo=end.tzinfo or UTC)
    container = build(load_settings())
    try:
        total = container.store.recorder.max_notification_id() or 0
        try:
            from domain.services.whatif import check_overrides, check_window

            check_window(since, until)
            check_overrides(overrides)
            with sheet_commands.bar(
                "reading the log", total, "events", cumulative=True, quiet=not progress
            ) as advance:
                log = container.whatif.read(project, advance)
            with sheet_commands.bar(
                "replaying", None, "buyers", cumulative=True, quiet=not progress
            ) as replayed:
                result = container.whatif.run(
                    project, since, until, overrides, lambda done, _total: replayed(done), log
                )
        except InvalidInput as bad:
            err.print(f"yingke: {bad.field}: {bad}")
            raise typer.Exit(2) from None
    finally:
        container.close()
    if xlsx is not None:
        with xlsx.open("wb") as target:
            columns = ["client_id", "kind", "subject", "live", "alternative", "detail"]
            write_xlsx(target, columns, result["changes"], False, "what-if")
    if output is not None:
        output.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    counts = ", ".join(f"{k} {v}" for k, v in result["counts"].items()) or "no changes"
    print(
        f"replayed {result['buyers']:,} buyers ({result['events_replayed']:,} events) of "
        f"{project} from {since.isoformat()} to {until.isoformat()}: "
        f"{result['buyers_changed']:,} would change ({counts}); "
        f"{len(result['released_earlier']):,} released earlier",
        flush=True,
    )
    for line in result["commission"]:
        print(
            f"  commission {line['payee_kind']} {line['payee_id']}: "
            f"{line['live']} → {line['alternative']} fen ({line['delta']:+d})",
            flush=True,
        )


def command() -> Any:
    """The click command typer builds (typer vendors its own click, hence Any)."""
    return typer.main.get_command(app)


def resolve(argv: list[str]) -> Any:
    """The subcommand ``argv`` runs, with its arguments parsed (raises on bad ones)."""
    group = command()
    ctx = group.make_context("yingke", list(argv))
    name, sub, rest = group.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
    while hasattr(sub, "resolve_command"):
        inner = sub.make_context(name, rest, parent=ctx)
        name, sub, rest = sub.resolve_command(inner, [*inner._protected_args, *inner.args])
    sub.make_context(name, rest, parent=ctx)
    return sub


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        command().main(args=argv, prog_name="yingke", standalone_mode=True)
    except ConfigurationError as exc:
        # One plain line (a rich console would wrap it at the terminal's width).
        print(f"yingke: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
