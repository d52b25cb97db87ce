"""Which shard owns a SKU: a consistent-hash ring, overridden by operator pins.

Python's ``hash()`` is salted per process, so the ring hashes with blake2b: every Serve
replica and every shard must compute the same owner for the same SKU.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping

# 512 points per shard keeps the largest shard within ~11% of the mean for 1-16 shards
# (tests/unit/test_routing.py; 128 left it up to 34% over at 13 shards), for ~100 KB a client.
VNODES = 512


def _point(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class HashRing:
    def __init__(self, shard_ids: list[int], vnodes: int = VNODES) -> None:
        if not shard_ids:
            raise ValueError("a ring needs at least one shard")
        points = sorted((_point(f"shard-{s}#{v}"), s) for s in shard_ids for v in range(vnodes))
        self._keys = [p for p, _ in points]
        self._owners = [s for _, s in points]
        self.shard_ids = tuple(sorted(shard_ids))

    def owner(self, sku: str) -> int:
        i = bisect.bisect(self._keys, _point(sku))
        return self._owners[i % len(self._owners)]


class Router:
    """Ring shards ``0..ring_shards-1``; dedicated shards after them take pinned SKUs only."""

    def __init__(
        self, ring_shards: int, dedicated_shards: int = 0, pins: Mapping[str, int] | None = None
    ) -> None:
        self.ring = HashRing(list(range(ring_shards)))
        self.ring_shards = ring_shards
        self.dedicated_shards = dedicated_shards
        self.pins: dict[str, int] = dict(pins or {})

    @property
    def all_shards(self) -> list[int]:
        return list(range(self.ring_shards + self.dedicated_shards))

    @property
    def dedicated(self) -> list[int]:
        return list(range(self.ring_shards, self.ring_shards + self.dedicated_shards))

    def owner(self, sku: str) -> int:
        pinned = self.pins.get(sku)
        return pinned if pinned is not None else self.ring.owner(sku)

    def owner_given_pin(self, sku: str, pin: int | None) -> int:
        return pin if pin is not None else self.ring.owner(sku)
