"""Request keys and reservation ids, both derived from the request id (ADR 0034).

A request id's key is the first 8 bytes of its SHA-256, as a signed 64-bit integer:
``inventory_requests`` stores it for every journaled request that is not a reserve, and the
SQL function ``inventory_request_key`` (018_reserve_keyed_by_its_hold.sql) computes the
same.

A reserve's reservation id is its request's key in hex, ``r<8 hex>.<8 hex>``, so the
reservations table's primary key is the reserve's dedupe key: a retry applied as new
inserts the same id and fails, and a reserve writes no dedupe row of its own. The id tells
nothing of the shard's sales (it is a hash), is unique while request ids are (a retry is
the same request, so the same hold), and the dot keeps a digit run under 13: never
card-number-like. Ids issued before 018, ``r<shard>.<epoch>.<hex>``, have two dots: the two
forms never meet.
"""

from __future__ import annotations

from hashlib import sha256

_SIGN = 1 << 63


def request_key(request_id: str) -> int:
    return int.from_bytes(sha256(request_id.encode()).digest()[:8], "big", signed=True)


def hold_id(key: int) -> str:
    """The reservation id of the reserve whose request key is ``key``."""
    k = key & 0xFFFF_FFFF_FFFF_FFFF
    return f"r{k >> 32:08x}.{k & 0xFFFF_FFFF:08x}"


def reservation_id(request_id: str) -> str:
    """``hold_id(request_key(request_id))``, in a third of its time: one per reserve."""
    h = sha256(request_id.encode()).hexdigest()
    return "r" + h[:8] + "." + h[8:16]


def key_hex(reservation_id: str) -> str:
    """A derived hold id's key as 16 hex digits, big-endian: the bytes of the int8 that
    ``pg_arrays.int8_hex`` sends without making an int."""
    return reservation_id[1:9] + reservation_id[10:18]


def key_of_hold(reservation_id: str) -> int:
    """The request key a derived reservation id was made from (its inverse)."""
    k = int(key_hex(reservation_id), 16)
    return k - (1 << 64) if k & _SIGN else k
