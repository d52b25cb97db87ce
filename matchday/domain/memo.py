"""A small time-bounded memo: per-replica memory of facts a hot path would otherwise read
from PostgreSQL on every request (the shop's carts and products)."""

from __future__ import annotations

import time

MEMO_SIZE = 100_000


class Memo:
    """A small time-bounded memo, oldest entries dropped first when full."""

    def __init__(self, ttl_s: float, size: int = MEMO_SIZE) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._data: dict[str, tuple[float, object]] = {}

    def get(self, key: str) -> object | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._data[key]
            return None
        return hit[1]

    def drop(self, key: str) -> None:
        self._data.pop(key, None)

    def put(self, key: str, value: object) -> None:
        if len(self._data) >= self.size:
            self._data.pop(next(iter(self._data)))
        self._data[key] = (time.monotonic() + self.ttl_s, value)
