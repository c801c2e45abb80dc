"""Read a spreadsheet file (xlsx, or CSV in UTF-8, UTF-8 with BOM, or GB18030) as rows.

xlsx is read with python-calamine (ADR 0039): a Rust reader that keeps the cell types
(numbers, dates) and is many times faster than openpyxl's reader on large registers.
It sizes a sheet by its farthest cell and allocates every position up to it, aborting
the process when that fails, so a workbook is vetted first (``_vet_xlsx``): its parts
may not unpack to more than a sane multiple of the file, and its cells may not span more
than ``MAX_CELLS`` positions.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from python_calamine import CalamineError, CalamineWorkbook

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"
_ZIP_MAGIC = b"PK\x03\x04"
MAX_HEADER_SEARCH = 10  # a title block (项目名称, 制表日期) may sit above the header

# Positions (rows × columns from A1) a sheet may span: 300,000 rows of 16 columns fit.
# The reader holds 32 bytes per position, so this bounds it to ~160 MB.
MAX_CELLS = 5_000_000
# Unpacked bytes of all of a workbook's parts: registers unpack to ~13× their size
# (a 2.7 MB, 50,000-row register holds a 35 MB sheet); a zip bomb to ~1,000×.
# Merged blocks: price lists merge 楼栋 over their units, a few thousand at most; each
# one costs the reader and Python ~250 bytes, and a small file can hold millions.
MAX_MERGED = 100_000
MAX_RATIO = 100
RATIO_FLOOR = 32 << 20
MAX_UNZIPPED = 1 << 30
_CHUNK = 8 << 20
_LONGEST_TAG = 64 << 20

# Fast path: every cell written as <c r="A1" …> (Excel, WPS, openpyxl, XlsxWriter do).
# Then positions come from the r attributes alone, and one beyond Z99999 has two letters
# or six digits: if none does, the part spans at most 26 × 99,999 cells, under the limit;
# else every position is read (a wide or a long sheet pays for that, nothing else does).
_CELL_STARTS = (b"<c ", b"<c>", b"<c/", b"<c\t", b"<c\n", b"<c\r", b":c ", b":c>", b":c/")
_CELL_WITH_REF = b'<c r="'
_FAR_REF = re.compile(rb'r="(?:[A-Z]{2,3}[0-9]{1,9}|[A-Z]?[0-9]{6,9})"')
_REF = re.compile(rb'r="([A-Z]{1,3})([0-9]{1,9})"')
# Slow path (cells without r, or r not first, or prefixed tags): follow rows and cells
# in order as the reader does, a cell without r being right of the previous one.
_TOKEN = re.compile(
    rb"<(?:[\w.-]+:)?(row|c)(?=[\s/>])|\sr\s*=\s*[\"']([A-Z]{0,3})([0-9]{1,9})[\"']"
)
# XML lets an attribute be written r='A1' or r = "A1"; the fast path takes only r="A1".
_OTHER_ATTRIBUTE_FORMS = (b" =", b"\t=", b"\n=", b"\r=")
# The reader reserves room for the shared strings' uniqueCount before reading any.
_UNIQUE_COUNT = re.compile(rb"uniqueCount\s*=\s*[\"']\s*\+?([0-9]+)")


class UnreadableFile(ValueError):
    pass


@dataclass
class Sheet:
    """Rows as the office sees them: ``number`` counts from 1 like Excel's row labels."""

    rows: list[tuple[int, list[Any]]]


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without the BOM Excel writes), else GB18030 (Excel on Chinese
    Windows saves CSV that way)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            raise UnreadableFile("must be UTF-8 or GB18030 text") from None


def is_xlsx(data: bytes) -> bool:
    return data.startswith(_ZIP_MAGIC)


def column_letters(number: int) -> str:
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


class _Extent:
    """The farthest row and column (1-based) a part's cells reach."""

    def __init__(self) -> None:
        self.rows = self.columns = 0

    def reach(self, row: int, column: int) -> None:
        self.rows, self.columns = max(self.rows, row), max(self.columns, column)

    def refs(self, refs: list[tuple[bytes, bytes]]) -> None:
        if refs:
            self.reach(max(int(r) for _, r in refs), max(_column_number(c) for c, _ in refs))


def _pieces(part: IO[bytes], budget: list[int]) -> Iterator[bytes]:
    """The part unpacked, cut after a '>' so that no tag is split; ``budget`` is the
    bytes still allowed to unpack, counted as they come (headers can lie)."""
    carry = b""
    merged = 0
    while chunk := part.read(_CHUNK):
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise UnreadableFile("unpacks to far more than a workbook of its size: refused")
        carry += chunk
        if b"uniqueCount" in carry:
            for claimed in _UNIQUE_COUNT.findall(carry):
                if int(claimed) > MAX_CELLS:
                    raise UnreadableFile(
                        f"claims {int(claimed)} shared strings: not a workbook to read"
                    )
        cut = carry.rfind(b">") + 1
        if cut:
            merged += carry.count(b"mergeCell ", 0, cut)
            if merged > MAX_MERGED:
                raise UnreadableFile(f"has more than {MAX_MERGED:,} merged cells")
            yield carry[:cut]
            carry = carry[cut:]
        elif len(carry) > _LONGEST_TAG:
            raise UnreadableFile("is not a readable xlsx workbook (a tag never ends)")
    if carry:
        yield carry


def _near_only(pieces: Iterator[bytes]) -> bool | None:
    """True if every cell carries its position first and none lies beyond Z99999; False
    if some does lie beyond; None if positions must be followed in order."""
    near = True
    for piece in pieces:
        with_ref = piece.count(_CELL_WITH_REF)
        # Cheap first (no other tag in sheetData starts with <c), exact when it differs.
        if piece.count(b"<c") + piece.count(b":c") != with_ref and (
            sum(piece.count(s) for s in _CELL_STARTS) != with_ref
        ):
            return None
        if piece.count(b"r=") != piece.count(b'r="') or any(
            piece.count(form) for form in _OTHER_ATTRIBUTE_FORMS
        ):
            return None
        near = near and not _FAR_REF.search(piece)
    return near


def _exact_extent(pieces: Iterator[bytes]) -> _Extent:
    extent = _Extent()
    for piece in pieces:
        extent.refs(_REF.findall(piece))
    return extent


def _slow_extent(pieces: Iterator[bytes]) -> _Extent:
    extent = _Extent()
    row = column = 0
    last = b""
    for piece in pieces:
        for match in _TOKEN.finditer(piece):
            tag, letters, digits = match.groups()
            if tag is not None:
                last = tag
                if tag == b"row":
                    row, column = row + 1, 0
                else:
                    column += 1
                    extent.reach(row, column)
            elif letters:
                row, column = int(digits), _column_number(letters)
                extent.reach(row, column)
            elif last == b"row":
                row = int(digits)
    return extent


def _vet_xlsx(data: bytes) -> None:
    """Refuse a workbook that would unpack or spread beyond the limits, before calamine
    sees it. Every part is checked (a duplicate or renamed sheet part cannot slip by)."""
    budget = [min(MAX_UNZIPPED, MAX_RATIO * len(data) + RATIO_FLOOR)]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        # The reader would also take .xlsb and .ods (other bombs, unvetted): xlsx only.
        if "xl/workbook.xml" not in names or names & {"xl/workbook.bin", "content.xml"}:
            raise UnreadableFile("is not an xlsx workbook: save it as .xlsx (Excel 2007+)")
        for info in archive.infolist():
            before = budget[0]
            with archive.open(info) as part:
                near = _near_only(_pieces(part, budget))
            if near:
                continue
            budget[0] = before
            with archive.open(info) as part:
                pieces = _pieces(part, budget)
                extent = _exact_extent(pieces) if near is False else _slow_extent(pieces)
            if extent.rows * extent.columns > MAX_CELLS:
                corner = f"{column_letters(extent.columns)}{extent.rows}"
                raise UnreadableFile(
                    f"has cells as far as {corner} ({info.filename}): more than "
                    f"{MAX_CELLS:,} cells from A1; delete what lies beyond the table"
                )
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise UnreadableFile(f"is not a readable xlsx workbook ({exc})") from None


def _filled_down(
    rows: Iterator[list[Any]], merged: list[Any], left: int, last: int
) -> Iterator[list[Any]]:
    """A value merged down over several rows, as Excel shows it, read in every row it
    covers (in the merged block's first column): price lists merge 楼栋 over its units,
    registers merge 置业顾问 over the consultant's buyers. ``left`` is the sheet's first
    column (rows start there), ``last`` its last row."""
    starts: dict[int, list[tuple[int, int]]] = {}
    work = 0
    for (top, first), (end, _) in merged:
        bottom = min(end, last)
        if bottom > top and first >= left:
            starts.setdefault(top, []).append((first - left, bottom))
            work += bottom - top
    if work > MAX_CELLS:  # merged blocks that overlap, over and over
        raise UnreadableFile("is not a readable xlsx workbook (its merged cells overlap)")
    active: list[tuple[int, int, Any]] = []
    for index, cells in enumerate(rows):
        if active:
            for column, _, value in active:
                if column < len(cells) and (cells[column] is None or cells[column] == ""):
                    cells[column] = value
            active = [a for a in active if a[1] > index]
        for column, bottom in starts.pop(index, ()):
            if column < len(cells) and cells[column] not in (None, ""):
                active.append((column, bottom, cells[column]))
        yield cells


def _xlsx_rows(data: bytes) -> Iterator[list[Any]]:
    _vet_xlsx(data)
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        if not book.sheet_names:
            raise UnreadableFile("the workbook has no sheet")
        sheet = book.get_sheet_by_index(0)
        left, last = (sheet.start[1], sheet.end[0]) if sheet.start and sheet.end else (0, -1)
        merged = sheet.merged_cell_ranges or []
        yield from _filled_down(sheet.iter_rows(), merged, left, last)
    except CalamineError as exc:
        raise UnreadableFile(f"is not a readable xlsx workbook ({exc})") from None


def _csv_rows(data: bytes) -> Iterator[list[Any]]:
    reader = csv.reader(io.StringIO(decode_text(data), newline=""))
    number = 0
    try:
        for number, cells in enumerate(reader, 1):  # noqa: B007 (read after the loop)
            yield cells
    except csv.Error as exc:  # a cell over the csv module's 131,072 characters
        raise UnreadableFile(f"第{number + 1}行: {exc}") from None


def read_sheet(data: bytes) -> Sheet:
    """The first worksheet of an xlsx workbook, or a CSV file; blank rows are dropped."""
    raw = _xlsx_rows(data) if is_xlsx(data) else _csv_rows(data)
    rows = [
        (number, list(cells))
        for number, cells in enumerate(raw, 1)
        if any(c is not None and str(c).strip() != "" for c in cells)
    ]
    return Sheet(rows)
