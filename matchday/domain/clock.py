"""Time, injected so that expiry can be tested without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch. Wall time: deadlines must survive a restart."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()
