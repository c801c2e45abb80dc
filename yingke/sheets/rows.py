"""Shared plumbing for turning sheet rows into import rows: labels and collected errors.

Rows are labelled ``第N行`` with N the sheet's own row number (what Excel shows at the
left), and a bad cell as ``第N行: <header as written>``, e.g. ``第7行: 手机``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from domain.errors import InvalidInput, InvalidRows
from yingke.sheets.columns import Column, MappingError, find_header, resolve
from yingke.sheets.reading import MAX_HEADER_SEARCH, Sheet
from yingke.sheets.values import CellError, blank

T = TypeVar("T")


def row_label(number: int) -> str:
    return f"第{number}行"


@dataclass
class Row:
    """One data row with its columns; reading a cell records a problem instead of raising."""

    number: int
    cells: list[Any]
    columns: Mapping[str, Column]
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return row_label(self.number)

    def where(self, name: str) -> str:
        column = self.columns.get(name)
        return f"{self.label}: {column.header if column else name}"

    def raw(self, name: str) -> Any:
        column = self.columns.get(name)
        if column is None or column.index >= len(self.cells):
            return None
        value = self.cells[column.index]
        return None if blank(value) else value

    def get(self, name: str, parse: Callable[[Any], T], required: bool = False) -> T | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.fail(name, "is required", "missing_value")
            return None
        try:
            return parse(value)
        except (CellError, InvalidInput) as exc:
            self.fail(name, str(exc), getattr(exc, "code", "invalid_value"))
            return None

    def fail(self, name: str, message: str, code: str) -> None:
        self.problems.append((self.where(name), message, code))


def data_rows(
    sheet: Sheet,
    aliases: Mapping[str, tuple[str, ...]],
    mapping: Mapping[str, str],
    required: tuple[str, ...],
) -> tuple[dict[str, Column], list[Row]]:
    """The header row found, the columns resolved, and every row below it."""
    if not sheet.rows:
        raise InvalidInput("body", "the sheet is empty: it needs a header row", code="empty")
    at = find_header(sheet.rows, aliases, mapping, MAX_HEADER_SEARCH)
    number, headers = sheet.rows[at]
    try:
        columns = resolve(headers, aliases, mapping, row_label(number))
    except MappingError as exc:
        raise InvalidInput(exc.field, str(exc), code=exc.code) from None
    missing = [name for name in required if name not in columns]
    if missing:
        wanted = " / ".join(aliases[missing[0]][:3])
        raise InvalidInput(
            f"{row_label(number)}: {missing[0]}",
            f"no column for {missing[0]} (a header such as {wanted}, or map one)",
            code="missing_column",
        )
    rows = [Row(n, cells, columns) for n, cells in sheet.rows[at + 1 :]]
    if not rows:
        raise InvalidInput("body", "the sheet has a header but no rows", code="empty")
    return columns, rows


def raise_problems(rows: list[Row], extra: list[tuple[str, str, str]] | None = None) -> None:
    problems = [p for row in rows for p in row.problems] + (extra or [])
    if problems:
        raise InvalidRows(problems)
