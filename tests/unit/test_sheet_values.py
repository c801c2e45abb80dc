"""The values sales offices type into sheets, read into numbers, dates and codes; and
headers found by their aliases."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidRows
from yingke.sheets import values
from yingke.sheets.clients import client_rows
from yingke.sheets.columns import CLIENT_ALIASES, resolve
from yingke.sheets.reading import Sheet, read_sheet
from yingke.sheets.units import unit_rows
from yingke.sheets.values import CHINA, CellError


@pytest.mark.parametrize(
    ("cell", "fen"),
    [
        (2350000, 235_000_000),
        (2350000.0, 235_000_000),
        ("2,350,000", 235_000_000),
        ("235万", 235_000_000),
        ("235.5万元", 235_500_000),
        ("¥2,350,000.00", 235_000_000),
        ("2350000元", 235_000_000),
        ("１,２３５万", 1_235_000_000),  # full-width digits and comma
    ],
)
def test_amounts_in_the_forms_offices_write_are_read_as_fen(cell: object, fen: int) -> None:
    assert values.money_fen(cell) == fen


def test_a_column_headed_in_wan_scales_bare_numbers() -> None:
    assert values.money_fen("235", Decimal(10000)) == 235_000_000
    assert values.money_fen("235万", Decimal(10000)) == 235_000_000  # the cell's unit wins


@pytest.mark.parametrize("cell", ["abc", "-5", "0", "2,35o,000", "235千"])
def test_an_amount_that_is_not_one_is_refused(cell: str) -> None:
    with pytest.raises(CellError):
        values.money_fen(cell)


@given(st.integers(min_value=1, max_value=10**10))
def test_whole_yuan_with_thousands_separators_round_trip(yuan: int) -> None:
    assert values.money_fen(f"{yuan:,}") == yuan * 100
    assert values.money_fen(yuan) == yuan * 100


@given(st.integers(min_value=1, max_value=999_999), st.integers(min_value=0, max_value=99))
def test_wan_with_decimals_is_exact(whole: int, hundredths: int) -> None:
    assert values.money_fen(f"{whole}.{hundredths:02d}万") == (whole * 100 + hundredths) * 10000


@pytest.mark.parametrize(
    ("cell", "m2"),
    [(89.5, "89.50"), ("89.5㎡", "89.50"), ("89.5平", "89.50"), ("89.5 m²", "89.50")],
)
def test_areas_keep_two_decimals(cell: object, m2: str) -> None:
    assert values.area_m2(cell) == Decimal(m2)


@pytest.mark.parametrize(
    ("cell", "rooms"),
    [(3, 3), ("三室两厅", 3), ("3室2厅1卫", 3), ("三房", 3), ("两居", 2), ("2居室", 2), ("十", 10)],
)
def test_layouts_give_their_bedrooms(cell: object, rooms: int) -> None:
    assert values.rooms(cell) == rooms


@pytest.mark.parametrize(
    ("cell", "floor"), [(12, 12), ("12层", 12), ("第12层", 12), ("12F", 12), ("B1", -1)]
)
def test_floors(cell: object, floor: int) -> None:
    assert values.floor(cell) == floor


@pytest.mark.parametrize(
    ("cell", "code"),
    [
        ("南", "south"),
        ("朝南", "south"),
        ("东南", "southeast"),
        ("南北通透", "north_south"),
        ("东西通透", "east_west"),
        ("north_south", "north_south"),
    ],
)
def test_orientations(cell: str, code: str) -> None:
    assert values.orientation(cell) == code


@pytest.mark.parametrize("cell", ["A", "a", "A类", "A级", "A类客户"])
def test_grades(cell: str) -> None:
    assert values.grade(cell) == "A"


@pytest.mark.parametrize(
    "cell",
    ["2024/3/5", "2024-03-05", "2024.3.5", "2024年3月5日", date(2024, 3, 5), 45356, "45356"],
)
def test_dates_in_every_form_are_the_same_day_in_china(cell: object) -> None:
    assert values.moment(cell) == datetime(2024, 3, 5, tzinfo=CHINA)


def test_a_date_with_a_time_keeps_it() -> None:
    assert values.moment("2024年3月5日 14:30") == datetime(2024, 3, 5, 14, 30, tzinfo=CHINA)


@given(st.dates(min_value=date(1960, 1, 1), max_value=date(2100, 12, 31)))
def test_excel_serials_and_typed_dates_agree(day: date) -> None:
    serial = (day - date(1899, 12, 30)).days
    typed = f"{day.year}年{day.month}月{day.day}日"
    assert values.moment(serial) == values.moment(typed) == values.moment(day.isoformat())


@pytest.mark.parametrize("cell", ["2024/13/1", "2024-02-30", "明天", 12])
def test_impossible_dates_are_refused(cell: object) -> None:
    with pytest.raises(CellError):
        values.moment(cell)


def test_headers_match_aliases_ignoring_units_spaces_and_stars() -> None:
    columns = resolve(
        ["*客户姓名", " 联系电话 ", "预算(万元)", "其他"], CLIENT_ALIASES, {}, "第1行"
    )
    assert {k: c.header for k, c in columns.items()} == {
        "name": "*客户姓名",
        "phone": "联系电话",
        "budget": "预算(万元)",
    }
    assert columns["budget"].scale == Decimal(10000)


def test_a_mapping_overrides_the_aliases_and_can_drop_a_column() -> None:
    columns = resolve(
        ["电话", "手机", "负责人"], CLIENT_ALIASES, {"电话": "", "负责人": "consultant"}, ""
    )
    assert {k: c.index for k, c in columns.items()} == {"phone": 1, "consultant": 2}


def test_the_header_is_found_below_a_title_and_bad_cells_are_named_by_row_and_header() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["XX项目一房一价表"])
    sheet.append([])
    sheet.append(["楼栋", "房号", "户型", "建筑面积", "朝向", "单价"])
    sheet.append(["3栋", 1201, "三室", "89.5㎡", "南", "26000"])
    sheet.append(["3栋", 1202, "三室", "大", "南", "26000"])
    out = io.BytesIO()
    book.save(out)
    with pytest.raises(InvalidRows) as refused:
        unit_rows(read_sheet(out.getvalue()))
    assert [p[0] for p in refused.value.problems] == ["第5行: 建筑面积"]


def test_csv_in_gb18030_with_a_bom_or_without_reads_the_same() -> None:
    text = "姓名,手机\n张三,13812345678\n"
    for data in (text.encode("gb18030"), b"\xef\xbb\xbf" + text.encode(), text.encode()):
        (row,) = client_rows(read_sheet(data))
        assert row.buyer is not None
        assert (row.label, row.buyer.name, row.buyer.phone) == ("第2行", "张三", "13812345678")


def test_a_channel_buyer_needs_a_partner_and_a_name_needs_mapping_to_an_id() -> None:
    sheet = Sheet(
        [
            (1, ["姓名", "手机", "来源", "置业顾问"]),
            (2, ["张三", "13812345678", "渠道", "c-1"]),
            (3, ["李四", "13812345679", "自然到访", "王五"]),
        ]
    )
    first, second = client_rows(sheet)
    assert [p[0] for p in first.problems] == ["第2行: partner"]
    assert [(p[0], p[2]) for p in second.problems] == [("第3行: 置业顾问", "unknown_name")]
    mapped = client_rows(sheet, {"consultants": {"王五": "c-5"}})[1]
    assert mapped.buyer is not None and mapped.buyer.consultant_id == "c-5"
    assert mapped.buyer.first_visited_at is None
