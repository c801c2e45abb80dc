"""Files sent to the import endpoints: the raw body with its content type, or a
multipart upload (field ``file``, optional field ``mapping``), as browsers and
``curl -F file=@客户.xlsx`` send them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Query, Request
from starlette.datastructures import UploadFile

from domain.errors import InvalidInput
from yingke.sheets.reading import XLSX, is_xlsx

Kind = Literal["xlsx", "csv", "json"]
_KINDS: dict[str, Kind] = {
    XLSX: "xlsx",
    "text/csv": "csv",
    "application/csv": "csv",
    "text/plain": "csv",
    "application/json": "json",
}
_EXTENSIONS: dict[str, Kind] = {".xlsx": "xlsx", ".csv": "csv", ".json": "json"}


@dataclass(frozen=True)
class Upload:
    data: bytes
    kind: Kind
    mapping: dict[str, Any] = field(default_factory=dict)


def _text_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def parse_mapping(raw: str | None) -> dict[str, Any]:
    """``{"sheet header": "field", …}`` ("" ignores a column), or for clients
    ``{"columns": {…}, "consultants": {name: id}, "partners": {name: id}}``."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidInput("mapping", "must be a JSON object of header → field") from None
    if not isinstance(value, dict) or not all(
        isinstance(v, str) or _text_map(v) for v in value.values()
    ):
        raise InvalidInput("mapping", "must be a JSON object of header → field")
    return value


def _kind(content_type: str, filename: str | None, data: bytes) -> Kind:
    if is_xlsx(data):
        return "xlsx"
    base = content_type.split(";")[0].strip().lower()
    if base in _KINDS:
        return _KINDS[base]
    suffix = (filename or "").lower().rpartition(".")
    if suffix[1] and f".{suffix[2]}" in _EXTENSIONS:
        return _EXTENSIONS[f".{suffix[2]}"]
    if base in ("application/octet-stream", ""):
        return "csv"
    raise HTTPException(415, f"send xlsx ({XLSX}), text/csv or application/json")


async def read_upload(
    request: Request,
    mapping: Annotated[
        str | None, Query(description='JSON {"sheet header": "field"} overriding the aliases')
    ] = None,
) -> Upload:
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        # Cache the raw body first: form() alone consumes the stream, and the
        # Idempotency-Key fingerprint (api/deps.py) must read the same bytes afterwards.
        await request.body()
        form = await request.form()
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise InvalidInput("file", "the multipart upload needs a file field named file")
        data = await part.read()
        form_mapping = form.get("mapping")
        chosen = form_mapping if isinstance(form_mapping, str) else mapping
        kind = _kind(part.content_type or "", part.filename, data)
        return Upload(data, kind, parse_mapping(chosen))
    if not content_type:
        raise HTTPException(415, f"send xlsx ({XLSX}), text/csv or application/json")
    data = await request.body()
    return Upload(data, _kind(content_type, None, data), parse_mapping(mapping))


UploadDep = Annotated[Upload, Depends(read_upload)]


def file_body(examples: dict[str, object]) -> dict[str, object]:
    """The OpenAPI requestBody of an import: xlsx, CSV, multipart, plus ``examples``."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    multipart = {
        "schema": {
            "type": "object",
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "mapping": {"type": "string", "description": '{"sheet header": "field"}'},
            },
            "required": ["file"],
        }
    }
    content = {XLSX: binary, "multipart/form-data": multipart, **examples}
    return {"requestBody": {"required": True, "content": content}}
