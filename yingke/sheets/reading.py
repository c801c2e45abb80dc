"""Read a spreadsheet file (xlsx, or CSV in UTF-8, UTF-8 with BOM, or GB18030) as rows.

xlsx is read with python-calamine (ADR 0039): a Rust reader that keeps the cell types
(numbers, dates) and is many times faster than openpyxl's reader on large registers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from python_calamine import CalamineError, CalamineWorkbook

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"
_ZIP_MAGIC = b"PK\x03\x04"
MAX_HEADER_SEARCH = 10  # a title block (项目名称, 制表日期) may sit above the header


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


def _xlsx_rows(data: bytes) -> Iterator[list[Any]]:
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        if not book.sheet_names:
            raise UnreadableFile("the workbook has no sheet")
        yield from book.get_sheet_by_index(0).iter_rows()
    except CalamineError as exc:
        raise UnreadableFile(f"is not a readable xlsx workbook ({exc})") from None


def read_sheet(data: bytes) -> Sheet:
    """The first worksheet of an xlsx workbook, or a CSV file; blank rows are dropped."""
    if is_xlsx(data):
        raw: Iterator[list[Any]] = _xlsx_rows(data)
    else:
        raw = iter(csv.reader(io.StringIO(decode_text(data), newline="")))
    rows = [
        (number, list(cells))
        for number, cells in enumerate(raw, 1)
        if any(c is not None and str(c).strip() != "" for c in cells)
    ]
    return Sheet(rows)
