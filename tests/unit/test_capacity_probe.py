"""The probe's drivers: fixed-rate and one-at-a-time calls, answers sorted into ok/errors."""

from __future__ import annotations

import asyncio

from cluster.capacity_probe import at_fixed_rate, new_key, one_at_a_time


def test_calls_at_a_fixed_rate_count_what_they_expected_and_what_they_did_not() -> None:
    seen: list[int] = []

    async def call(i: int) -> int:
        seen.append(i)
        if i == 13:
            raise ConnectionResetError("gone")
        return 201 if i % 5 else 503

    out = asyncio.run(at_fixed_rate(call, 20, 2000.0, {201}, first=10))
    assert sorted(seen) == list(range(10, 30))  # after the first ten (the latency probes)
    # 10, 15, 20, 25 answered 503; 13 raised: 5 errors, each named.
    assert (out.ok, out.errors) == (15, 5)
    assert out.statuses == {"201": 15, "503": 4, "ConnectionResetError": 1}
    assert len(out.latencies_ms) == 15


def test_one_at_a_time_never_overlaps() -> None:
    running = [0]
    most = [0]

    async def call(i: int) -> int:
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.001)
        running[0] -= 1
        return 200

    out = asyncio.run(one_at_a_time(call, 5, {200}))
    assert out.ok == 5 and most[0] == 1


def test_idempotency_keys_carry_no_card_like_digit_runs() -> None:
    assert not any(ch.isdigit() and ch not in "234567" for ch in new_key())
