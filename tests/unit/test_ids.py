"""Request keys and derived reservation ids (ADR 0034)."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given
from hypothesis import strategies as st

from matchday.inventory.ids import hold_id, key_of_hold, request_key, reservation_id


@given(st.text(min_size=1, max_size=80))
def test_a_hold_id_round_trips_to_its_request_key(request_id: str) -> None:
    key = request_key(request_id)
    assert -(1 << 63) <= key < 1 << 63
    hold = reservation_id(request_id)
    assert hold == hold_id(key)
    assert key_of_hold(hold) == key
    assert re.fullmatch(r"r[0-9a-f]{8}\.[0-9a-f]{8}", hold)
    # Never card-number-like: no run of 13 digits (the PAN guard's shortest card).
    assert not re.search(r"\d{13}", hold)


def test_the_key_is_the_first_eight_bytes_of_sha256_signed() -> None:
    digest = hashlib.sha256(b"req-1").digest()
    assert request_key("req-1") == int.from_bytes(digest[:8], "big", signed=True)
    assert hold_id(-1) == "rffffffff.ffffffff" and key_of_hold("rffffffff.ffffffff") == -1
    assert hold_id(0) == "r00000000.00000000" and key_of_hold("r00000000.00000000") == 0
