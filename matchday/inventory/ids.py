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

A request id may lead with a time tag (ADR 0039): 11 hex digits of Unix milliseconds and a
``~`` (``tagged``), a character no request id could hold before, so no stored id changes
meaning. A tagged reserve's hold is ``t<tag>.<8 hex>.<8 hex>``: holds sort by their tags,
so PostgreSQL inserts them where it inserted the last ones instead of on a random page of an
index as large as the shop's history. The tag must be as stable as the request id: the shop
uses its cart's creation time, so a retry, from any replica, at any later time, names the
same hold.
"""

from __future__ import annotations

import re
from hashlib import sha256

from matchday.domain.ids import ID_RE

_SIGN = 1 << 63
TAG_DIGITS = 11  # Unix milliseconds in hex, zero-padded: until the year 2527
_TAGGED = re.compile(r"[0-9a-f]{11}~")
# Any journaled request id: matchday's id rule, optionally after a time tag.
REQUEST_RE = re.compile(rf"(?:[0-9a-f]{{{TAG_DIGITS}}}~)?{ID_RE.pattern}")


def tagged(request_id: str, at: float) -> str:
    """``request_id`` led by the time tag of ``at`` (seconds, to the nearest millisecond):
    give it the same ``at`` on every retry, or the retry is another request."""
    return f"{round(at * 1000):0{TAG_DIGITS}x}~{request_id}"


def request_key(request_id: str) -> int:
    return int.from_bytes(sha256(request_id.encode()).digest()[:8], "big", signed=True)


def hold_id(key: int) -> str:
    """The reservation id of the reserve whose request key is ``key``."""
    k = key & 0xFFFF_FFFF_FFFF_FFFF
    return f"r{k >> 32:08x}.{k & 0xFFFF_FFFF:08x}"


def reservation_id(request_id: str) -> str:
    """The hold a reserve with this request id creates: ``hold_id(request_key(request_id))``
    (in a third of its time: one per reserve), or that key after the request's time tag."""
    h = sha256(request_id.encode()).digest()[:8].hex(".", 4)  # "<8 hex>.<8 hex>"
    if request_id[TAG_DIGITS : TAG_DIGITS + 1] == "~" and _TAGGED.match(request_id):
        return f"t{request_id[:TAG_DIGITS]}.{h}"
    return "r" + h


def key_hex(reservation_id: str) -> str:
    """A derived hold id's key as 16 hex digits, big-endian: the bytes of the int8 that
    ``pg_arrays.int8_hex`` sends without making an int."""
    if reservation_id[0] == "t":
        return reservation_id[-17:-9] + reservation_id[-8:]
    return reservation_id[1:9] + reservation_id[10:18]


def key_of_hold(reservation_id: str) -> int:
    """The request key a derived reservation id was made from (its inverse)."""
    k = int(key_hex(reservation_id), 16)
    return k - (1 << 64) if k & _SIGN else k
