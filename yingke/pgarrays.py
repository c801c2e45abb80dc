"""One-dimensional PostgreSQL arrays, encoded once in the binary wire format.

psycopg dumps a Python list by looking for its element type on every call (scanning
the list, picking a dumper per element type, then dumping element by element through
that dumper): for the group-commit writer's six-array statements that was several per
cent of all the process's CPU (issue 15). Our arrays have one known element type and
no NULLs, so each is encoded here with ``struct``/``bytes.join`` into the format
``array_recv`` reads, and handed to psycopg as a value of a ``bytes`` subclass whose
dumper (registered once, process-wide, at import) only names the array's type.

The server checks the element type named in the data against the parameter's type, so
a wrong array kind is refused rather than misread.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

# ndim, has-null flag, element type oid, length of the one dimension, its lower bound.
_HEAD = struct.Struct(">iiiii")
_EMPTY = struct.Struct(">iii")
_LEN = struct.Struct(">i")
_UUID_LEN = _LEN.pack(16)

UUID_OID, UUID_ARRAY_OID = 2950, 2951
INT8_OID, INT8_ARRAY_OID = 20, 1016
TEXT_OID, TEXT_ARRAY_OID = 25, 1009
BYTEA_OID, BYTEA_ARRAY_OID = 17, 1001


class UuidArray(bytes):
    """A ``uuid[]`` parameter, already encoded."""


class Int8Array(bytes):
    """A ``bigint[]`` parameter, already encoded."""


class TextArray(bytes):
    """A ``text[]`` parameter, already encoded."""


class ByteaArray(bytes):
    """A ``bytea[]`` parameter, already encoded."""


def _head(element_oid: int, count: int) -> bytes:
    if count == 0:
        return _EMPTY.pack(0, 0, element_oid)
    return _HEAD.pack(1, 0, element_oid, count, 1)


def uuids(items: Sequence[uuid.UUID]) -> UuidArray:
    if not items:
        return UuidArray(_head(UUID_OID, 0))
    return UuidArray(
        _head(UUID_OID, len(items)) + _UUID_LEN + _UUID_LEN.join([u.bytes for u in items])
    )


def int8s(items: Sequence[int]) -> Int8Array:
    count = len(items)
    if not count:
        return Int8Array(_head(INT8_OID, 0))
    # Each element is its length (8) then the value: interleave both into one pack.
    values: list[int] = [8] * (2 * count)
    values[1::2] = items
    return Int8Array(_head(INT8_OID, count) + struct.pack(">" + "iq" * count, *values))


def _varlena(element_oid: int, items: Sequence[bytes]) -> bytes:
    if not items:
        return _head(element_oid, 0)
    pack = _LEN.pack
    return _head(element_oid, len(items)) + b"".join([pack(len(b)) + b for b in items])


def texts(items: Sequence[str]) -> TextArray:
    return TextArray(_varlena(TEXT_OID, [s.encode() for s in items]))


def byteas(items: Sequence[bytes]) -> ByteaArray:
    return ByteaArray(_varlena(BYTEA_OID, items))


class _Encoded(Dumper):
    format = Format.BINARY

    def dump(self, obj: bytes) -> bytes:
        return obj


class _UuidArrayDumper(_Encoded):
    oid = UUID_ARRAY_OID


class _Int8ArrayDumper(_Encoded):
    oid = INT8_ARRAY_OID


class _TextArrayDumper(_Encoded):
    oid = TEXT_ARRAY_OID


class _ByteaArrayDumper(_Encoded):
    oid = BYTEA_ARRAY_OID


# Process-wide, so every connection made after this import knows them.
psycopg.adapters.register_dumper(UuidArray, _UuidArrayDumper)
psycopg.adapters.register_dumper(Int8Array, _Int8ArrayDumper)
psycopg.adapters.register_dumper(TextArray, _TextArrayDumper)
psycopg.adapters.register_dumper(ByteaArray, _ByteaArrayDumper)
