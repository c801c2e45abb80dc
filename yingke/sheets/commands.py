"""``yingke import clients|units FILE`` and ``yingke export VIEW``, with progress bars.

The commands run in-process against the configured store (like ``yingke migrate``), as
the operator on the server: the recorded actor is ``cli`` with the admin role.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from openpyxl import Workbook
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

err = Console(stderr=True)
imports = typer.Typer(help="导入 import sheets: a client register (客户台账) or a price list.")
STATUS_HEADERS = ("导入状态", "导入说明")  # written back by --dry-run


@contextmanager
def bar(
    what: str, total: int | None, unit: str, cumulative: bool = False, quiet: bool = False
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)`` (or, ``cumulative``, a
    function taking the count done so far). ``quiet`` hides it unless stderr is a terminal."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=quiet and not err.is_terminal,
    )
    with progress:
        task = progress.add_task(what, total=total)
        if cumulative:
            yield lambda n: progress.update(task, completed=n)
        else:
            yield lambda n: progress.advance(task, n)


def _mapping(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    from api.uploads import parse_mapping

    return parse_mapping(path.read_text(encoding="utf-8"))


def _context() -> Any:
    import uuid

    from domain.services.uow import Context
    from domain.values import Actor

    return Context(actor=Actor("cli", "admin"), correlation_id=f"cli-{uuid.uuid4()}")


def _fail(exc: Exception) -> None:
    from domain.errors import InvalidInput

    if isinstance(exc, InvalidInput):
        err.print(f"[red]nothing imported:[/red] {exc}")
        for problem in exc.details():
            err.print(f"  {problem['field']}: {problem['message']} ({problem['code']})")
        raise typer.Exit(1)
    raise exc


@imports.command("clients")
def import_clients(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="xlsx or CSV")],
    project: Annotated[str, typer.Option("--project", "-p", help="项目 id")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="check only; write FILE.checked with a status")
    ] = False,
    mapping: Annotated[
        Path | None, typer.Option(help='JSON: {"columns": …, "consultants": …, "partners": …}')
    ] = None,
) -> None:
    """客户迁移: import buyers from a client register; all rows or none, re-runs change
    nothing."""
    from api.routers.client_import import report_body
    from domain.errors import InvalidInput
    from yingke.bootstrap import build
    from yingke.settings import load_settings
    from yingke.sheets.clients import client_rows
    from yingke.sheets.reading import read_sheet

    data = file.read_bytes()
    sheet = read_sheet(data)
    container = build(load_settings())
    try:
        rows = client_rows(sheet, _mapping(mapping))
        importer = container.client_import
        if dry_run:
            body = report_body(importer.run(_context(), project, rows, dry_run=True).value)
            target = _write_back(file, data, body["results"])
            err.print(
                f"checked {body['rows']} rows: {body['new']} new, "
                f"{body['unchanged']} unchanged, {body['invalid']} invalid → {target}"
            )
            raise typer.Exit(1 if body["invalid"] else 0)
        with bar("importing clients", len(rows), "rows") as advance:
            done = importer.run(_context(), project, rows, progress=advance)
        err.print(
            f"imported {done.value.count('new')} buyers, {done.value.count('unchanged')} "
            f"unchanged (position {done.position})"
        )
    except InvalidInput as exc:
        _fail(exc)
    finally:
        container.close()


@imports.command("units")
def import_units(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="xlsx or CSV")],
    project: Annotated[str, typer.Option("--project", "-p", help="项目 id")],
    mapping: Annotated[Path | None, typer.Option(help='JSON: {"sheet header": "field"}')] = None,
) -> None:
    """房源: import units from a 一房一价表; all rows or none."""
    from domain.errors import InvalidInput
    from yingke.bootstrap import build
    from yingke.settings import load_settings
    from yingke.sheets.reading import read_sheet
    from yingke.sheets.units import unit_rows

    container = build(load_settings())
    try:
        rows = unit_rows(read_sheet(file.read_bytes()), _mapping(mapping))
        with err.status(f"importing {len(rows)} units…"):
            done = container.units.import_units(_context(), project, rows)
        report = done.value
        err.print(
            f"{report.count('listed')} listed, {report.count('revised')} revised, "
            f"{report.count('unchanged')} unchanged"
        )
    except InvalidInput as exc:
        _fail(exc)
    finally:
        container.close()


def _write_back(file: Path, data: bytes, results: list[dict[str, Any]]) -> Path:
    """The sheet again with 导入状态 / 导入说明 beside every row (values only)."""
    from yingke.sheets.export import xlsx_cell
    from yingke.sheets.reading import is_xlsx, read_sheet

    by_row = {r["row"]: r for r in results}
    rows = read_sheet(data).rows
    first = next((i for i, (n, _) in enumerate(rows) if f"第{n}行" in by_row), 0)
    out_rows: list[list[Any]] = []
    for i, (number, cells) in enumerate(rows):
        extra: list[Any] = []
        if i == first - 1:
            extra = list(STATUS_HEADERS)
        elif (found := by_row.get(f"第{number}行")) is not None:
            extra = [found["status"], found["message"] or ""]
        out_rows.append([*cells, *extra])
    width = max(len(r) for r in out_rows)
    if is_xlsx(data):
        target = file.with_suffix(".checked.xlsx")
        book = Workbook(write_only=True)
        sheet = book.create_sheet("checked")
        for row in out_rows:
            sheet.append([xlsx_cell(sheet, value) for value in row])
        book.save(target)
    else:
        target = file.with_suffix(".checked.csv")
        text = io.StringIO()
        csv.writer(text).writerows(r + [""] * (width - len(r)) for r in out_rows)
        target.write_bytes(b"\xef\xbb\xbf" + text.getvalue().encode())
    return target


# ------------------------------------------------------------------------- export


def _views() -> dict[str, Callable[..., Iterable[dict[str, Any]]]]:
    """View name → rows for an unrestricted reader, filtered by project when given."""
    from datetime import UTC, datetime

    from projections import dashboards, deal_queries, people, queries
    from projections.queries import Scope, iterate

    everyone = Scope()

    def paged(fetch: Callable[..., Any]) -> Callable[..., Iterable[dict[str, Any]]]:
        return lambda db, project: iterate(
            lambda at, size: fetch(db, project, cursor=at, limit=size)
        )

    def now() -> datetime:
        return datetime.now(UTC)

    return {
        "clients": paged(lambda db, p, **k: queries.clients(db, everyone, project_id=p, **k)),
        "reports": paged(lambda db, p, **k: queries.reports(db, everyone, project_id=p, **k)),
        "tasks": paged(lambda db, p, **k: queries.tasks(db, everyone, now(), project_id=p, **k)),
        "rule-tasks": paged(
            lambda db, p, **k: queries.raised_tasks(db, everyone, project_id=p, status=None, **k)
        ),
        "deals": paged(
            lambda db, p, **k: deal_queries.deals(db, everyone, now(), project_id=p, **k)
        ),
        "units": paged(lambda db, p, **k: deal_queries.list_units(db, p or "", **k)),
        "commission-entries": paged(
            lambda db, p, **k: deal_queries.commission_entries(db, everyone, project_id=p, **k)
        ),
        "funnel": lambda db, p: queries.funnel(db, everyone, project_id=p),
        "channels": lambda db, p: queries.channels(db, everyone, project_id=p),
        "consultants": lambda db, p: queries.consultants(db, everyone, project_id=p),
        "protection-board": lambda db, p: queries.protection(db, everyone, now(), project_id=p),
        "lost-reasons": lambda db, p: queries.lost(db, everyone, project_id=p),
        "pool": lambda db, p: queries.pool(db, everyone, project_id=p),
        "deal-pipeline": lambda db, p: deal_queries.pipeline(db, everyone, now(), project_id=p),
        "payments": lambda db, p: deal_queries.payments(db, everyone, project_id=p),
        "commissions": lambda db, p: deal_queries.commissions(db, everyone, project_id=p),
        "signing-forecast": lambda db, p: deal_queries.signing_forecast(
            db, everyone, now(), project_id=p
        )["deals"],
        "conversion": lambda db, p: dashboards.conversion(
            db, everyone, group_by="project", period="month", project_id=p
        ),
        "staff": paged(lambda db, p, **k: people.directory(db, None, project_id=p, **k)),
    }


VIEW_NAMES = (
    "clients, reports, tasks, rule-tasks, deals, units, commission-entries, funnel, channels, "
    "consultants, protection-board, lost-reasons, pool, deal-pipeline, payments, commissions, "
    "signing-forecast, conversion, staff"
)


def _counted(rows: Iterable[dict[str, Any]], advance: Callable[[int], None]) -> Iterator[Any]:
    for row in rows:
        advance(1)
        yield row


def export(
    view: Annotated[str, typer.Argument(help=f"one of: {VIEW_NAMES}")],
    format: Annotated[str, typer.Option("--format", "-f", help="xlsx or csv")] = "xlsx",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write; - for stdout")
    ] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", help="项目 id")] = None,
    headers: Annotated[str, typer.Option(help="en or zh (Chinese column names)")] = "en",
) -> None:
    """导出 export a view (报表) as xlsx or CSV, streamed: every row, flat memory."""
    from yingke.bootstrap import build
    from yingke.settings import load_settings
    from yingke.sheets.export import chunks

    views = _views()
    if view not in views:
        raise typer.BadParameter(f"{view!r}: one of {VIEW_NAMES}", param_hint="VIEW")
    if format not in ("xlsx", "csv"):
        raise typer.BadParameter("xlsx or csv", param_hint="--format")
    if view == "units" and project is None:
        raise typer.BadParameter("units are per project: pass --project", param_hint="--project")
    target = output or Path(f"{view}.{format}")
    container = build(load_settings())
    try:
        rows = iter(views[view](container.views, project))
        first = next(rows, None)
        columns = list(first) if first is not None else []
        with bar(f"exporting {view}", None, "rows") as advance:
            stream = _counted([first] if first is not None else [], advance)
            everything = _chain(stream, _counted(rows, advance))
            body = chunks(format, columns, everything, headers == "zh", view)
            if str(target) == "-":
                for chunk in body:
                    sys.stdout.buffer.write(chunk)
            else:
                with target.open("wb") as out:
                    for chunk in body:
                        out.write(chunk)
    finally:
        container.close()
    if str(target) != "-":
        err.print(f"wrote {target}")


def _chain(*parts: Iterable[Any]) -> Iterator[Any]:
    for part in parts:
        yield from part
