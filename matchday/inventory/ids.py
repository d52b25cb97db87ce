"""Reservation ids: ``r<shard>.<epoch>.<n>``, unique across shards and restarts.

The shard and its epoch (bumped by every start and recovery, never reused) make each
incarnation's ids its own; ``n`` counts its reservations through a random bijection of
[0, 2^40), drawn per incarnation, shown in hex. No uuid4 per reserve (2 us each), and two
ids a shopper sees do not tell how many sales the shard made in between. An incarnation
never issues 2^40 reservations. Hex keeps a digit run under 13: never card-number-like.
"""

from __future__ import annotations

import random

_BITS = 40
_MASK = (1 << _BITS) - 1


class ReservationIds:
    __slots__ = ("_mul", "_n", "_prefix", "_xor")

    def __init__(self, shard_id: int, epoch: int) -> None:
        rng = random.SystemRandom()
        self._n = 0
        self._mul = rng.randrange(1, 1 << _BITS, 2)  # odd: multiplying is a bijection
        self._xor = rng.randrange(1 << _BITS)
        self._prefix = f"r{shard_id}.{epoch}."

    def __call__(self) -> str:
        self._n += 1
        return f"{self._prefix}{((self._n * self._mul) & _MASK) ^ self._xor:x}"
