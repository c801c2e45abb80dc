"""Benchmark: import a 50,000-row client register (xlsx) on SQLite and on PostgreSQL, and
export 100,000 rows as CSV and xlsx, each beside the bare library doing the same I/O.

Run with ``make bench-sheets`` (needs PostgreSQL on 127.0.0.1:5432, trust auth). Every
scenario runs in a child process of its own so that its peak memory (ru_maxrss) is its
own; rows/s counts the whole path (read, parse, check, seal, save; or query, write).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from python_calamine import CalamineWorkbook

from bench.common import conninfo, idle_check, scratch_database

HEADERS = ["姓名", "手机", "来源", "渠道公司", "置业顾问", "意向等级", "首次到访", "最近跟进"]
HEADERS += ["跟进记录", "预算", "意向户型", "面积", "备注"]
SECRET = "bench-secret-0123456789abcdef"
ADMIN_KEY = "bench-admin-key-0123456789"


def make_register(path: Path, rows: int) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("客户台账")
    sheet.append(HEADERS)
    start = datetime(2024, 1, 1)
    for i in range(rows):
        channel = i % 3 == 0
        sheet.append(
            [
                f"客户{i}",
                f"139{i:08d}",
                "渠道" if channel else "自然到访",
                f"partner-{i % 7}" if channel else None,
                f"c-{i % 20}",
                "ABC"[i % 3] + "类",
                (start + timedelta(days=i % 300)).strftime("%Y/%m/%d"),
                (start + timedelta(days=i % 300 + 3)).strftime("%Y年%m月%d日"),
                "电话回访，周末来看样板间",
                f"{200 + i % 150}万",
                "三室两厅",
                f"{80 + i % 60}.5㎡",
                None,
            ]
        )
    book.save(path)


def peak_mb() -> float:
    """This process's own peak RSS. Not ru_maxrss: on Linux it keeps the high-water mark
    of the forked parent from before exec, so every child would report at least the
    parent's size (which grows as the parent seeds the views)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def isolated(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``fn`` in a fresh process; its answer plus its own peak memory."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(_measured, (fn, *args))
    return result


def _measured(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    baseline = peak_mb()
    started, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    out["seconds"] = time.perf_counter() - started
    out["cpu_seconds"] = time.process_time() - cpu
    out["peak_mb"] = peak_mb()
    out["baseline_mb"] = baseline
    return out


# ------------------------------------------------------------------------- import


def bare_read(path: str) -> dict[str, Any]:
    book = CalamineWorkbook.from_path(path)
    rows = sum(1 for _ in book.get_sheet_by_index(0).iter_rows()) - 1
    return {"rows": rows}


def yingke_import(path: str, env: dict[str, str]) -> dict[str, Any]:
    from domain.services.uow import Context
    from domain.values import Actor
    from yingke.bootstrap import build, migrate
    from yingke.settings import load_settings
    from yingke.sheets.clients import client_rows
    from yingke.sheets.reading import read_sheet

    settings = load_settings(env)
    if settings.database_url is not None:
        migrate(settings)
    container = build(settings)
    admin = Context(Actor("bench", "admin"), "bench-setup")
    for n in range(20):
        key = f"key-c{n}-{uuid.uuid4().hex}"
        container.principals.register_principal(admin, f"c-{n}", "consultant", None, ["bench"], key)
    started, cpu = time.perf_counter(), time.process_time()
    rows = client_rows(read_sheet(Path(path).read_bytes()))
    importer = container.client_import
    result = importer.run(Context(Actor("bench", "admin"), "bench-import"), "bench", rows)
    seconds, import_cpu = time.perf_counter() - started, time.process_time() - cpu
    again, cpu = time.perf_counter(), time.process_time()
    rerun = importer.run(Context(Actor("bench", "admin"), "bench-rerun"), "bench", rows)
    rerun_seconds, rerun_cpu = time.perf_counter() - again, time.process_time() - cpu
    container.close()
    assert result.value.count("new") == len(rows)
    assert rerun.value.count("unchanged") == len(rows)
    return {
        "rows": len(rows),
        "import_seconds": seconds,
        "import_cpu_seconds": import_cpu,
        "rerun_seconds": rerun_seconds,
        "rerun_cpu_seconds": rerun_cpu,
    }


# ------------------------------------------------------------------------- export


def seed_view(path: str, start: int, stop: int) -> None:
    from projections.client_overview import TABLE
    from projections.runtime import SQLiteViewDB

    db = SQLiteViewDB(Path(path))
    now = datetime(2026, 3, 3, tzinfo=UTC)
    with db.transaction() as tx:
        for statement in TABLE.ddl(db.dialect):
            tx.execute(statement)
        batch = []
        for i in range(start, stop):
            row = dict.fromkeys(TABLE.columns)
            row.update(
                client_id=str(uuid.UUID(int=i)),
                project_id="bench",
                phone_masked=f"139****{i % 10000:04d}",
                status="owned",
                consultant_id=f"c-{i % 20}",
                basis="walk_in",
                owned_since=now,
                protected_until=now + timedelta(days=30),
                grade="ABC"[i % 3],
                reports=1,
                visits=1,
                follow_ups=i % 5,
                effective_follow_ups=0,
                open_disputes=0,
                claim_pending=False,
                personal_data_erased=False,
                registered_at=now + timedelta(seconds=i),
                updated_at=now,
                version=3,
            )
            batch.append(TABLE.to_db(db.dialect, row))
        marks = ", ".join(["%s"] * len(TABLE.columns))
        tx.executemany(f"INSERT INTO {TABLE.name} VALUES ({marks})", batch)


def yingke_export(path: str, fmt: str, target: str) -> dict[str, Any]:
    from projections import queries
    from projections.queries import Scope, iterate
    from projections.runtime import SQLiteViewDB
    from yingke.sheets.export import chunks

    db = SQLiteViewDB(Path(path))
    rows = iterate(lambda at, size: queries.clients(db, Scope(), cursor=at, limit=size))
    first = next(rows)
    count = 0

    def counted() -> Any:
        nonlocal count
        yield first
        count += 1
        for row in rows:
            count += 1
            yield row

    with open(target, "wb") as out:
        for chunk in chunks(fmt, list(first), counted(), True, "clients"):
            out.write(chunk)
    return {"rows": count}


def bare_export(path: str, fmt: str, target: str) -> dict[str, Any]:
    """The same rows straight from one SELECT cursor into csv / openpyxl write-only."""
    import sqlite3

    conn = sqlite3.connect(path)
    cursor = conn.execute("SELECT * FROM client_overview ORDER BY registered_at, client_id")
    count = 0
    if fmt == "csv":
        with open(target, "w", newline="", encoding="utf-8-sig") as out:
            writer = csv.writer(out)
            for row in cursor:
                writer.writerow(row)
                count += 1
    else:
        book = Workbook(write_only=True)
        sheet = book.create_sheet("clients")
        for row in cursor:
            sheet.append(list(row))
            count += 1
        book.save(target)
    return {"rows": count}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--only", choices=["import", "export"])
    args = parser.parse_args()
    idle_check()
    print(f"load average at start: {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        register = Path(tmp) / "register.xlsx"
        make_register(register, args.rows)
        size = register.stat().st_size / 1e6
        print(f"register: {args.rows:,} rows, {size:.1f} MB xlsx")
        # rows/CPU-s: rows per second of this process's CPU (SQLite works in-process;
        # PostgreSQL's server CPU is not in it): the rate on a core of its own, which a
        # loaded box cannot give (load is the run queue; 2 cores here).
        print(f"{'scenario':52} {'rows/s':>9} {'vs bare':>8} {'rows/CPU-s':>10}", end="")
        print(f" {'peak MB':>8} {'load':>5}")

        def show(name: str, r: dict[str, Any], key: str = "seconds", bare: float = 0) -> float:
            rate: float = r["rows"] / r[key]
            ratio = f"{rate / bare:.3f}" if bare else "1.000"
            cpu = r.get(key.replace("seconds", "cpu_seconds"))
            per_cpu = f"{r['rows'] / cpu:,.0f}" if cpu else "-"
            print(f"{name:52} {rate:>9,.0f} {ratio:>8} {per_cpu:>10}", end="")
            print(f" {r['peak_mb']:>8.0f} {_load():>5}")
            return rate

        read = show("bare python-calamine: read every row", isolated(bare_read, str(register)))
        env = {
            "YINGKE_DATA_DIR": str(Path(tmp) / "sqlite"),
            "YINGKE_SECRET": SECRET,
            "YINGKE_ADMIN_KEY": ADMIN_KEY,
        }
        if args.only != "export":
            r = isolated(yingke_import, str(register), env)
            show("import on SQLite (read, parse, check, seal, save)", r, "import_seconds", read)
            show("  re-run of the same file (all unchanged)", r, "rerun_seconds", read)
        if args.only != "export" and not args.skip_postgres:
            with scratch_database() as name:
                pg_env = {**env, "YINGKE_DATABASE_URL": _url(conninfo(name))}
                r = isolated(yingke_import, str(register), pg_env)
                show("import on PostgreSQL", r, "import_seconds", read)
                show("  re-run of the same file (all unchanged)", r, "rerun_seconds", read)
        if args.only != "import":
            export(args.export_rows, Path(tmp), show)
    print(f"load average at end: {_load()}")


def export(top: int, tmp: Path, show: Callable[..., float]) -> None:
    """Peak memory at a tenth, half and all of ``top`` rows shows whether it is flat."""
    views = str(tmp / "views.sqlite3")
    seeded = 0
    for rows in sorted({top // 10, top // 2, top}):
        seed_view(views, seeded, rows)
        seeded = rows
        for fmt in ("csv", "xlsx"):
            target = str(tmp / f"out.{fmt}")
            # The bare writer first: its rate is the ratio's denominator.
            base = isolated(bare_export, views, fmt, target)
            mine = isolated(yingke_export, views, fmt, target)
            show(f"export {rows:,} rows as {fmt}", mine, bare=base["rows"] / base["seconds"])
            show(f"  bare {fmt} writer, same rows", base)


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _url(info: str) -> str:
    parts = dict(p.split("=", 1) for p in info.split())
    return f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"


if __name__ == "__main__":
    main()
