"""One-dimensional PostgreSQL arrays, encoded once, for a batch's array parameters.

psycopg adapts a Python list per query: it scans the list for an element type, makes a
dumper for the list and one for its elements, then encodes. That cost ~8.5 µs per list
parameter before the first element (issue 12; 40 lists of 32 elements: 340 µs), a third of a
shard's CPU per reserve at 64 callers, for a statement whose ~40 array types never change.
Here each array is encoded straight into PostgreSQL's binary array format, and psycopg only
passes the bytes on with the array's type: ``text(["a", None])``, ``int8([1, 2])``.

The binary format (``array_recv`` in PostgreSQL's arrayfuncs.c): dimensions (0 for an empty
array, else 1), a has-nulls flag, the element type, then for the one dimension its length and
lower bound (1), then each element as its byte length (-1 for NULL) and its bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.postgres import types
from psycopg.pq import Format

_EMPTY = struct.Struct(">iii")
_HEAD = struct.Struct(">iiiii")
_LEN = struct.Struct(">i").pack
_NULL = _LEN(-1)
_LENS = [_LEN(n) for n in range(1024)]  # ids and SKUs are short: a list index, not a pack


class PgArray(bytes):
    """An encoded array; subclasses name its PostgreSQL type."""

    oid = 0


def _array_class(name: str) -> type[PgArray]:
    info = types.get(name)
    assert info is not None and info.array_oid
    element_oid, array_oid = info.oid, info.array_oid

    class Array(PgArray):
        oid = array_oid
        element = element_oid

    class ArrayDumper(Dumper):
        format = Format.BINARY
        oid = array_oid

        def dump(self, obj: Any) -> bytes:
            return bytes(obj)

    Array.__name__ = ArrayDumper.__name__ = f"{name}_array"
    psycopg.adapters.register_dumper(Array, ArrayDumper)
    return Array


_TEXT = _array_class("text")
_INT2 = _array_class("int2")
_INT4 = _array_class("int4")
_INT8 = _array_class("int8")
_FLOAT8 = _array_class("float8")


def _head(cls: type[PgArray], values: Sequence[Any], nulls: bool) -> bytes:
    return _HEAD.pack(1, int(nulls), cls.element, len(values), 1)  # type: ignore[attr-defined]


def _fixed(cls: type[PgArray], code: str) -> Callable[[Sequence[Any]], PgArray]:
    size = struct.calcsize(">" + code)
    one = struct.Struct(">i" + code).pack

    def encode(values: Sequence[Any]) -> PgArray:
        if not values:
            return cls(_EMPTY.pack(0, 0, cls.element))  # type: ignore[attr-defined]
        first = values[0]
        if first is not None and first == values[-1] and values.count(first) == len(values):
            # One value throughout (a batch's quantities, kinds, times): packed once.
            return cls(_head(cls, values, False) + one(size, first) * len(values))
        if None in values:
            if values.count(None) == len(values):  # a stock column of reservation entries
                return cls(_head(cls, values, True) + _NULL * len(values))
            body = b"".join(_NULL if v is None else one(size, v) for v in values)
            return cls(_head(cls, values, True) + body)
        packed = struct.pack(f">{('i' + code) * len(values)}", *_with_sizes(size, values))
        return cls(_head(cls, values, False) + packed)

    return encode


def _with_sizes(size: int, values: Sequence[Any]) -> list[Any]:
    out: list[Any] = [size] * (2 * len(values))
    out[1::2] = values
    return out


def text(values: Sequence[str | None]) -> PgArray:
    """A ``text[]`` of ``values`` (None is NULL)."""
    if not values:
        return _TEXT(_EMPTY.pack(0, 0, _TEXT.element))  # type: ignore[attr-defined]
    first = values[0]
    if first == values[-1] and values.count(first) == len(values):
        # One value throughout (a hot SKU's column, the holds' status, no order yet): one
        # element encoded and repeated, 0.7 us for 64 where the loop takes 7.
        return _TEXT(_head(_TEXT, values, first is None) + _element(first) * len(values))
    fast = _ascii_body(values)
    if fast is not None:
        return _TEXT(_head(_TEXT, values, False) + fast)
    parts = [_head(_TEXT, values, None in values)]
    append, lens, short = parts.append, _LENS, len(_LENS)
    for v in values:
        if v is None:
            append(_NULL)
            continue
        b = v.encode()
        n = len(b)
        append(lens[n] if n < short else _LEN(n))
        append(b)
    return _TEXT(b"".join(parts))


# An element's length as text: below 128, its four big-endian bytes are ASCII characters.
_SHORT_LENS = ["\0\0\0" + chr(n) for n in range(128)]


def _ascii_body(values: Sequence[str | None]) -> bytes | None:
    """The elements of ``values`` as one ``str.encode``, when every value is an ASCII str
    under 128 characters (ids, SKUs, statuses: every hot column); else None.

    Each element's length is then four ASCII characters, so the lengths and the values are
    joined as text and encoded once: 3.7 us for 64 hold ids, where a loop over the elements
    took 8.5 (2026-12-05)."""
    try:
        lens = [_SHORT_LENS[len(v)] for v in values]  # type: ignore[arg-type]
    except (TypeError, IndexError):  # a NULL, or a value of 128 characters or more
        return None
    parts: list[str | None] = [None] * (2 * len(values))
    parts[0::2] = lens
    parts[1::2] = values
    try:
        joined = "".join(parts)  # type: ignore[arg-type]
    except TypeError:  # not a str: the loop names it
        return None
    return joined.encode("ascii") if joined.isascii() else None


def _element(v: str | None) -> bytes:
    if v is None:
        return _NULL
    b = v.encode()
    n = len(b)
    return (_LENS[n] if n < len(_LENS) else _LEN(n)) + b


def int8_hex(values: Sequence[str]) -> PgArray:
    """A ``bigint[]`` of 64-bit two's-complement values given as 16 hex digits each, big
    endian (``ids.key_hex``): the digits are the element's bytes, decoded in one call."""
    if not values:
        return _INT8(_EMPTY.pack(0, 0, _INT8.element))  # type: ignore[attr-defined]
    body = bytes.fromhex("00000008" + "00000008".join(values))
    return _INT8(_head(_INT8, values, False) + body)


int2 = _fixed(_INT2, "h")
int4 = _fixed(_INT4, "i")
int8 = _fixed(_INT8, "q")
float8 = _fixed(_FLOAT8, "d")
