"""Request keys and derived reservation ids (ADR 0034), and time-tagged ones (ADR 0039)."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given
from hypothesis import strategies as st

from matchday.inventory.ids import (
    REQUEST_RE,
    hold_id,
    key_of_hold,
    request_key,
    reservation_id,
    tagged,
)


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


# -- time-tagged request ids (ADR 0039) -------------------------------------------------------

TAG_AT = 1_796_000_000.123  # 2026-11-30, seconds


@given(st.text(alphabet="abcXYZ019:._-", min_size=1, max_size=60), st.floats(0, 1e10))
def test_a_tagged_reserve_holds_a_hold_led_by_its_tag_whose_key_is_its_own(
    base: str, at: float
) -> None:
    request_id = tagged(base, at)
    tag = f"{round(at * 1000):011x}"
    assert request_id == f"{tag}~{base}"
    hold = reservation_id(request_id)
    assert re.fullmatch(rf"t{tag}\.[0-9a-f]{{8}}\.[0-9a-f]{{8}}", hold)
    assert key_of_hold(hold) == request_key(request_id)  # the whole id, tag and all
    assert not re.search(r"\d{13}", hold)


def test_holds_sort_by_their_tags_whatever_their_hashes() -> None:
    """What makes PostgreSQL insert a new hold where it inserted the last ones."""
    holds = [reservation_id(tagged(f"add:c_{i}:k", TAG_AT + i / 1000)) for i in range(200)]
    assert holds == sorted(holds)
    assert holds[0] < reservation_id(tagged("add:c_0:k", TAG_AT + 3600))


def test_the_tag_makes_another_request_and_only_a_well_formed_tag_counts() -> None:
    base = "add:c_1:key-1"
    assert reservation_id(tagged(base, TAG_AT)) != reservation_id(tagged(base, TAG_AT + 0.001))
    assert reservation_id(tagged(base, TAG_AT)) != reservation_id(base)
    assert reservation_id(base) == hold_id(request_key(base))  # untagged: as before the tag
    for not_a_tag in ("19B1Bf5D02b~x", "19b1bf5d02~x", "x19b1bf5d02b~x", "19b1bf5d02b-x"):
        assert reservation_id(not_a_tag).startswith("r"), not_a_tag


def test_only_an_eleven_digit_lowercase_tag_and_a_tilde_lead_a_request_id() -> None:
    assert REQUEST_RE.fullmatch(tagged("add:c_1:k", TAG_AT))
    assert REQUEST_RE.fullmatch("plain-id:1")
    for bad in ("19b1bf5d02b~", "19b1bf5d02b~~x", "19B1BF5D02B~x", "19b1bf5d02~x", "x~y", "~x"):
        assert not REQUEST_RE.fullmatch(bad), bad
