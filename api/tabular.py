"""Content negotiation for lists and views: JSON, or the same rows as CSV or xlsx.

Every list and view route takes ``TabularDep`` and hands it its rows: ``Accept: text/csv``
or ``Accept: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`` (or
``?format=csv|xlsx`` for a browser link) turns the answer into a streamed download with
the same filters and scoping, and no page limit; ``?headers=zh`` names the columns in
Chinese. Anything else keeps the JSON answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse

from projections.queries import Page, iterate
from yingke.sheets.export import FORMATS, chunks
from yingke.sheets.reading import XLSX

Format = Literal["csv", "xlsx"]
_BY_TYPE: dict[str, Format] = {"text/csv": "csv", "application/csv": "csv", XLSX: "xlsx"}


def negotiate(accept: str) -> Format | None:
    """The tabular format the Accept header prefers over JSON, if any: highest q first,
    then the earlier entry."""
    candidates: list[tuple[float, int, Format | None]] = []
    for order, part in enumerate(accept.split(",")):
        mime, *params = (p.strip().lower() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if mime in _BY_TYPE:
            candidates.append((q, -order, _BY_TYPE[mime]))
        elif mime in ("application/json", "application/*", "*/*"):
            candidates.append((q, -order, None))
    if not candidates:
        return None
    q, _, fmt = max(candidates, key=lambda c: (c[0], c[1]))
    return fmt if q > 0 else None


@dataclass(frozen=True)
class Tabular:
    fmt: Format | None
    zh: bool
    name: str

    def page(
        self,
        fetch: Callable[[str | None, int], Page],
        cursor: str | None,
        limit: int,
        columns: Sequence[str] = (),
    ) -> Any:
        """JSON: one page. CSV/xlsx: every row from ``cursor`` on, batch by batch."""
        if self.fmt is None:
            result = fetch(cursor, limit)
            return {"items": result.items, "next_cursor": result.next_cursor}
        return self.download(iterate(fetch, cursor), columns)

    def rows(self, rows: list[dict[str, Any]], columns: Sequence[str] = ()) -> Any:
        if self.fmt is None:
            return {"items": rows}
        return self.download(rows, columns)

    def download(self, rows: Iterable[dict[str, Any]], columns: Sequence[str] = ()) -> Any:
        assert self.fmt is not None
        stream = iter(rows)
        first = next(stream, None)
        if first is not None:
            # Rows may carry computed fields (a task's status) beyond the table's columns.
            columns = [*columns, *(k for k in first if k not in columns)]
            stream = itertools.chain([first], stream)
        filename = f"{self.name}.{self.fmt}"
        return StreamingResponse(
            chunks(self.fmt, list(columns), stream, self.zh, self.name),
            media_type=FORMATS[self.fmt],
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


def tabular(
    request: Request,
    format: Annotated[
        Format | None, Query(description="csv or xlsx: same as the Accept header")
    ] = None,
    headers: Annotated[
        Literal["en", "zh"], Query(description="zh: Chinese column names in CSV/xlsx")
    ] = "en",
) -> Tabular:
    fmt = format or negotiate(request.headers.get("accept", ""))
    name = request.url.path.rstrip("/").rsplit("/", 1)[-1] or "export"
    return Tabular(fmt, headers == "zh", name)


TabularDep = Annotated[Tabular, Depends(tabular)]
