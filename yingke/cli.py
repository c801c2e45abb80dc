"""The ``yingke`` command."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from dataclasses import replace

from yingke.settings import ConfigurationError, Settings, load_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app, create_waiting_app
    from yingke.bootstrap import Container, build
    from yingke.guard import STORE_ERRORS

    settings = load_settings()
    host = args.host or settings.host
    port = args.port or settings.port
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
        app = create_waiting_app(settings, lambda: build(settings))
    else:
        if settings.workers == "inprocess":
            container.start_workers()
        app = create_app(container)
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
    try:
        uvicorn.run(app, host=host, port=port, log_level=args.log_level)
    finally:
        app.state.guard.stop()
        if app.state.container is not None:
            app.state.container.close()
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    """The environment's settings, with the command line's overrides."""
    settings = load_settings()
    port = getattr(args, "metrics_port", None)
    return settings if port is None else replace(settings, metrics_port=port)


def _run_loop(step_name: str, args: argparse.Namespace) -> int:
    """Run one worker in the foreground until SIGTERM or Ctrl-C."""
    from projections.runtime import Loop
    from yingke import metrics
    from yingke.bootstrap import build

    settings = _settings(args)
    container = build(settings)
    step = container.follower.run_once if step_name == "views" else container.deadlines_step
    interval = settings.follow_interval if step_name == "views" else settings.deadline_interval
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
    return 0


def _projections(args: argparse.Namespace) -> int:
    if args.action == "rebuild":
        return _rebuild(args.name)
    return _run_loop("views", args)


def _rebuild(name: str | None) -> int:
    from projections.runtime import rebuild
    from yingke.bootstrap import build

    container = build(load_settings())
    try:
        views = {v.name: v for v in container.follower.views}
        if name not in views:
            print(f"yingke: unknown view {name!r}; one of: {', '.join(views)}", file=sys.stderr)
            return 2
        report = rebuild(container.store, container.views, views[name])
        print(
            f"rebuilt {report.view}: {report.events} events in {report.seconds:.2f}s "
            f"({report.events_per_second:,.0f} events/s), position {report.position}, "
            f"rows {report.rows}",
            flush=True,
        )
    finally:
        container.close()
    return 0


def _deadlines(args: argparse.Namespace) -> int:
    return _run_loop("deadlines", args)


def _migrate(args: argparse.Namespace) -> int:
    from yingke.bootstrap import migrate

    settings = load_settings()
    migrate(settings)
    print("tables are in place", flush=True)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from yingke.bootstrap import build
    from yingke.chain import ChainBroken, verify_log

    container = build(load_settings())
    recorder = container.store.recorder
    total = max(0, (container.position() or 0) - args.start + 1)
    done = 0
    started = time.monotonic()

    def progress(count: int) -> None:
        nonlocal done
        done += count
        if sys.stderr.isatty() or args.progress:
            width = 30
            filled = int(width * done / total) if total else width
            rate = done / max(time.monotonic() - started, 1e-9)
            print(
                f"\rverifying [{'#' * filled}{'.' * (width - filled)}] "
                f"{done:,}/{total:,} events  {rate:,.0f}/s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    try:
        report = verify_log(recorder, container.key_dir, start=args.start, progress=progress)
    except ChainBroken as broken:
        print(file=sys.stderr)
        print(
            f"BROKEN: stream {broken.stream} version {broken.version} "
            f"position {broken.position}: {broken.reason}",
            flush=True,
        )
        return 1
    finally:
        container.close()
    print(file=sys.stderr)
    print(
        f"verified {report.events:,} events and {report.checkpoints} signed checkpoints "
        f"in {time.monotonic() - started:.1f}s; head {report.head_position} "
        f"log hash {report.head_log_hash}",
        flush=True,
    )
    return 0


def _keys(args: argparse.Namespace) -> int:
    from yingke.bootstrap import build

    container = build(load_settings())
    try:
        vault = container.vault
        keys = container.key_dir
        if args.action == "rotate":
            epoch = vault.rotate()
            print(f"KEK epoch {epoch} in use; every older epoch destroyed", flush=True)
            if args.signing:
                key_id, _ = keys.new_signing_key()
                print(f"signing key {key_id} in use; older ones stay published", flush=True)
        elif args.action == "sweep":
            ran = vault.sweep()
            print("retired due KEK epochs" if ran else "nothing due", flush=True)
        else:
            print(f"KEK epochs present: {keys.epochs()}")
            for info in keys.signing_keys():
                print(f"signing key {info.key_id} valid {info.valid_from} .. {info.valid_until}")
    finally:
        container.close()
    return 0


def _relay(args: argparse.Namespace) -> int:
    from consumers.relay import main as relay_main

    return relay_main(settings=_settings(args))


def _consume(args: argparse.Namespace) -> int:
    if args.name == "views":
        from consumers.views import main as views_main

        return views_main(args.views, settings=_settings(args))
    from consumers.reminders import main as reminders_main

    return reminders_main(settings=_settings(args))


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (0-65535) (got {text!r})")
    return int(text)


def _metrics_port(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        help="serve Prometheus /metrics on this port (overrides YINGKE_METRICS_PORT; 0: any)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yingke", description="赢客 Yingke CRM service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (embedded default: SQLite)")
    serve.add_argument("--host", default=None, help="overrides YINGKE_HOST")
    serve.add_argument("--port", type=int, default=None, help="overrides YINGKE_PORT")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)
    mig = sub.add_parser("migrate", help="create the tables (run once before scaled workers)")
    mig.set_defaults(func=_migrate)
    proj = sub.add_parser(
        "projections",
        help="follow the event log into the BI views, or `rebuild <view>` one from zero",
    )
    proj.add_argument("action", nargs="?", choices=["follow", "rebuild"], default="follow")
    proj.add_argument("name", nargs="?", help="the view to rebuild, e.g. client_overview")
    proj.set_defaults(func=_projections)
    _metrics_port(proj)
    dead = sub.add_parser("deadlines", help="fire report, protection and inactivity deadlines")
    dead.set_defaults(func=_deadlines)
    _metrics_port(dead)
    verify = sub.add_parser(
        "verify", help="recompute every hash chain and signed checkpoint; non-zero if broken"
    )
    verify.add_argument("--from", dest="start", type=int, default=1, help="log position")
    verify.add_argument("--progress", action="store_true", help="progress bar even if not a tty")
    verify.set_defaults(func=_verify)
    keys = sub.add_parser("keys", help="key-encryption epochs and signing keys")
    keys.add_argument("action", choices=["rotate", "sweep", "list"])
    keys.add_argument("--signing", action="store_true", help="rotate: the signing key too")
    keys.set_defaults(func=_keys)
    relay = sub.add_parser("relay", help="publish the event log to Kafka (one relay publishes)")
    relay.set_defaults(func=_relay)
    _metrics_port(relay)
    consume = sub.add_parser("consume", help="run a Kafka consumer group: views or reminders")
    consume.add_argument("name", choices=["views", "reminders"])
    consume.add_argument(
        "--views", default=None, help="views only: a comma-separated subset (its own group)"
    )
    consume.set_defaults(func=_consume)
    _metrics_port(consume)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        result: int = args.func(args)
    except ConfigurationError as exc:
        print(f"yingke: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
