"""Which joins are obvious bots: pushed behind every genuine fan, or turned away (ADR 0026).

The signals are cheap to check, costly to fake at scale, and soft on genuine fans:
- no proof of work (a client that runs no JavaScript): behind;
- more identities from one client address than the drop's ``address_limit``: behind; more
  than ``REFUSE_FACTOR`` times that: refused. Soft first, because stadium Wi-Fi and carrier
  NAT put many genuine fans behind one address.
"""

from __future__ import annotations

from dataclasses import dataclass

# A place is microseconds since PLACE_EPOCH (2026-01-01 UTC); a pushed-back place adds
# BEHIND_US (about 31 years), so suspected tickets keep their arrival order among themselves
# and come after every genuine one. Places stay below 2**53: Redis sorted-set scores are
# doubles, exact up to there.
PLACE_EPOCH = 1_767_225_600
BEHIND_US = 10**15
REFUSE_FACTOR = 10

GENUINE, BEHIND, REFUSED = "genuine", "behind", "refused"


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # GENUINE, BEHIND or REFUSED
    reasons: tuple[str, ...] = ()

    def place(self, now: float) -> int:
        arrival_us = int((now - PLACE_EPOCH) * 1_000_000)
        return arrival_us + (BEHIND_US if self.kind == BEHIND else 0)


def judge(*, worked: bool, identities_here: int, address_limit: int) -> Verdict:
    """``worked``: the join carried a valid proof of work; ``identities_here``: shoppers who
    joined this drop from the client's address, this one included."""
    refuse_over = address_limit * REFUSE_FACTOR
    if identities_here > refuse_over:
        return Verdict(REFUSED, (f"over {refuse_over} shoppers from one address",))
    reasons = []
    if not worked:
        reasons.append("no proof of work")
    if identities_here > address_limit:
        reasons.append(f"over {address_limit} shoppers from one address")
    return Verdict(BEHIND if reasons else GENUINE, tuple(reasons))


def is_behind(place: int) -> bool:
    return place >= BEHIND_US


def arrival_of(place: int) -> float:
    """The epoch seconds a place was taken at (the bot offset removed)."""
    return PLACE_EPOCH + (place % BEHIND_US) / 1_000_000
