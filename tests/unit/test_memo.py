"""The hot path's per-replica memo: bounded in time and in size."""

from __future__ import annotations

import time

from matchday.domain.memo import Memo


def test_a_memo_forgets_an_entry_once_its_time_is_up() -> None:
    memo = Memo(ttl_s=0.05)
    memo.put("c_1", "fan-1")
    assert memo.get("c_1") == "fan-1"
    time.sleep(0.06)
    assert memo.get("c_1") is None


def test_a_full_memo_drops_its_oldest_entry_first() -> None:
    memo = Memo(ttl_s=60, size=2)
    memo.put("a", 1)
    memo.put("b", 2)
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("b"), memo.get("c")) == (None, 2, 3)


def test_a_dropped_entry_is_gone_and_dropping_a_missing_one_is_harmless() -> None:
    memo = Memo(ttl_s=60)
    memo.put("c_1", "fan-1")
    memo.drop("c_1")
    memo.drop("c_2")
    assert memo.get("c_1") is None
