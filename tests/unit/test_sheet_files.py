"""Files as offices and attackers make them: merged cells, stray far-away cells, zip
bombs, oversized CSV cells; and exports that never hand Excel a formula."""

from __future__ import annotations

import csv
import io
import zipfile

import openpyxl
import pytest

from yingke.sheets.export import csv_chunks, write_xlsx
from yingke.sheets.reading import (
    MAX_CELLS,
    MAX_MERGED,
    MAX_RATIO,
    RATIO_FLOOR,
    UnreadableFile,
    read_sheet,
)


def book_bytes(book: openpyxl.Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def register() -> openpyxl.Workbook:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["姓名", "手机"])
    sheet.append(["甲", "13600000001"])
    return book


def test_a_value_merged_down_a_column_is_read_in_every_row_it_covers() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["楼栋", "房号", "备注"])
    sheet.append(["1号楼", 101, "整层"])
    sheet.append([None, 102, None])
    sheet.append([None, 103, None])
    sheet.append(["2号楼", 201, None])
    sheet.merge_cells("A2:A4")  # 楼栋 merged down, as price lists do
    sheet.merge_cells("C2:C3")
    rows = read_sheet(book_bytes(book)).rows
    assert [(n, cells[0], cells[2]) for n, cells in rows] == [
        (1, "楼栋", "备注"),
        (2, "1号楼", "整层"),
        (3, "1号楼", "整层"),
        (4, "1号楼", ""),
        (5, "2号楼", ""),
    ]


def test_a_merged_block_reaching_below_the_last_row_fills_the_rows_there_are() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["姓名", "置业顾问"])
    sheet.append(["甲", "c-wang"])
    sheet.append(["乙", None])
    sheet.merge_cells("B2:B40")
    assert [cells for _, cells in read_sheet(book_bytes(book)).rows][1:] == [
        ["甲", "c-wang"],
        ["乙", "c-wang"],
    ]


def test_only_xlsx_workbooks_are_read_not_other_zips() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as odf:  # an OpenDocument sheet (.ods) is a zip too
        odf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        odf.writestr("content.xml", "<office:document-content/>")
    with pytest.raises(UnreadableFile, match="xlsx"):
        read_sheet(out.getvalue())


def test_a_value_merged_across_columns_stays_in_its_first_column() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["XX项目客户台账", None, None])
    sheet.merge_cells("A1:C1")
    sheet.append(["姓名", "手机", "备注"])
    rows = read_sheet(book_bytes(book)).rows
    assert rows[0] == (1, ["XX项目客户台账", "", ""])


def test_a_merged_block_starting_right_of_column_a_fills_its_own_column() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["C3"], sheet["D3"] = "姓名", "顾问"
    sheet["C4"], sheet["D4"] = "甲", "c-wang"
    sheet["C5"] = "乙"
    sheet.merge_cells("D4:D5")
    rows = read_sheet(book_bytes(book)).rows
    assert [(n, cells) for n, cells in rows] == [
        (3, ["姓名", "顾问"]),
        (4, ["甲", "c-wang"]),
        (5, ["乙", "c-wang"]),
    ]


@pytest.mark.parametrize("far", ["XFD1048576", "Z300000", "XFD1"])
def test_a_stray_cell_far_away_is_refused_before_the_reader_sizes_the_sheet(far: str) -> None:
    # A few KB: the reader would allocate a cell for every position up to it (512 GB
    # for XFD1048576) and abort the whole process.
    book = register()
    sheet = book.active
    assert sheet is not None
    sheet[far] = "x"
    data = book_bytes(book)
    assert len(data) < 10_000
    if far == "XFD1":  # one row of 16,384 columns is small: it reads
        assert len(read_sheet(data).rows) == 2
        return
    with pytest.raises(UnreadableFile, match=far):
        read_sheet(data)


def test_cells_without_positions_are_counted_where_the_reader_puts_them() -> None:
    # Rows and cells may omit their r attribute; the reader then numbers them in order.
    inline = '<c t="inlineStr"><is><t>x</t></is></c>'
    rows = f'<row r="1">{inline}{inline}</row><row r="{MAX_CELLS}">{inline}{inline}</row>'
    with pytest.raises(UnreadableFile, match="cells"):
        read_sheet(with_sheet_data(rows))
    assert len(read_sheet(with_sheet_data(f'<row r="1">{inline}{inline}</row>')).rows) == 1


def with_sheet_data(rows_xml: str) -> bytes:
    """register() with its first worksheet's rows replaced by ``rows_xml``."""
    source = zipfile.ZipFile(io.BytesIO(book_bytes(register())))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                head, _, rest = data.decode().partition("<sheetData>")
                _, _, tail = rest.partition("</sheetData>")
                data = f"{head}<sheetData>{rows_xml}</sheetData>{tail}".encode()
            target.writestr(info, data)
    return out.getvalue()


def test_a_zip_bomb_is_refused_without_unpacking_it_all() -> None:
    source = zipfile.ZipFile(io.BytesIO(book_bytes(register())))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, source.read(info.filename))
        with target.open("xl/padding.xml", "w") as padding:
            block = b" " * (1 << 20)
            for _ in range(2 * RATIO_FLOOR // len(block)):
                padding.write(block)
    data = out.getvalue()
    assert MAX_RATIO * len(data) + RATIO_FLOOR < 2 * RATIO_FLOOR  # a bomb: tiny packed
    with pytest.raises(UnreadableFile, match="unpack"):
        read_sheet(data)


def test_a_csv_cell_too_long_to_read_is_a_problem_with_its_line() -> None:
    data = ("姓名,手机\n甲,13600000001\n" + "x" * 200_000 + ",13600000002\n").encode()
    with pytest.raises(UnreadableFile, match="第3行"):
        read_sheet(data)


DANGEROUS = ["=1+2", "+1+2", "-1+2", "@SUM(A1)", '=HYPERLINK("http://x.example","点我")']


def test_csv_exports_never_start_a_text_cell_with_a_formula_sign() -> None:
    rows = [{"name": text, "count": -3} for text in DANGEROUS]
    body = b"".join(csv_chunks(["name", "count"], rows, zh=False)).decode("utf-8-sig")
    read = list(csv.reader(io.StringIO(body)))[1:]
    assert [r[0] for r in read] == [f"'{text}" for text in DANGEROUS]
    assert {r[1] for r in read} == {"-3"}  # numbers stay numbers


def test_xlsx_exports_write_formula_like_text_as_text() -> None:
    rows = [{"name": text, "count": -3} for text in DANGEROUS]
    out = io.BytesIO()
    write_xlsx(out, ["name", "count"], rows, zh=False, title="t")
    sheet = openpyxl.load_workbook(io.BytesIO(out.getvalue())).active
    assert sheet is not None
    cells = [(row[0].value, row[0].data_type, row[1].value) for row in sheet.iter_rows(min_row=2)]
    assert cells == [(text, "s", -3) for text in DANGEROUS]


@pytest.mark.parametrize(
    "far_cell",
    [
        '<c t="inlineStr" r="XFD1048576"><is><t>x</t></is></c>',  # r after another attribute
        '<c\tr="XFD1048576" t="inlineStr"><is><t>x</t></is></c>',  # a tab, not a space
        '<c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c><c t="n"><v>1</v></c>',
        "<c r='XFD1048576' t=\"inlineStr\"><is><t>x</t></is></c>",  # single quotes
        '<c r = "XFD1048576" t="inlineStr"><is><t>x</t></is></c>',  # spaces around =
        '<c r="A2" r="XFD1048576" t="inlineStr"><is><t>x</t></is></c>',  # r twice
    ],
)
def test_a_far_cell_written_in_any_legal_form_is_found(far_cell: str) -> None:
    near = '<row r="1"><c r="A1" t="inlineStr"><is><t>姓名</t></is></c></row>'
    # (a cell without r right of XFD1048576 is XFE1048576, where the reader puts it)
    with pytest.raises(UnreadableFile, match=r"XF[DE]1048576"):
        read_sheet(with_sheet_data(f'{near}<row r="1048576">{far_cell}</row>'))


def test_a_shared_string_table_claiming_billions_of_strings_is_refused() -> None:
    # The reader reserves room for uniqueCount strings up front: 4e9 of them, 96 GB.
    source = zipfile.ZipFile(io.BytesIO(book_bytes(register())))
    out = io.BytesIO()
    sst = (
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        "count='1' uniqueCount = '4000000000'><si><t>乙</t></si></sst>"
    )
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, source.read(info.filename))
        target.writestr("xl/sharedStrings.xml", sst)
    with pytest.raises(UnreadableFile, match="4000000000"):
        read_sheet(out.getvalue())


def test_millions_of_merged_blocks_are_refused() -> None:
    merges = "".join(f'<mergeCell ref="A{n}:B{n}"/>' for n in range(1, MAX_MERGED + 2))
    data = with_sheet_data('<row r="1"><c r="A1" t="inlineStr"><is><t>x</t></is></c></row>')
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            part = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                block = f'</sheetData><mergeCells count="{MAX_MERGED + 1}">{merges}</mergeCells>'
                part = part.replace(b"</sheetData>", block.encode())
            target.writestr(info, part)
    with pytest.raises(UnreadableFile, match="merged"):
        read_sheet(out.getvalue())
