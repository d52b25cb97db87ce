"""A marketplace channel's share of one SKU, kept inside that SKU's ledger (ADR 0028).

The ledger owns one :class:`ChannelStock` per channel that ever held or was allocated the
SKU: the units the channel holds and has sold, and its allocation. The allocation is checked
by the ledger in the same step that takes the units from the SKU's one stock count, so a
channel can never pass its allocation, and a unit sold on one channel (or on the shop) can
never be sold on another: there is one count, and one owner applying mutations to it.

An allocation is a ceiling, not a ring-fence: ``max_units`` units, or ``max_percent`` of the
SKU's ``on_hand`` (every unit put up for sale, sold ones included), held or sold on the
channel at once. Lowering it below what the channel already holds revokes nothing; the
channel only cannot take more. No allocation: the channel sells against all available units.

The functions below are :class:`SkuLedger`'s channel methods (bound in its class body), kept
here so the ledger's own module stays readable in one sitting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from matchday.domain.errors import AllocationExceeded
from matchday.inventory.changes import R_CHANNEL, R_EXPIRES, Changes, Reservation
from matchday.inventory.wire import (
    ALLOCATE,
    RESERVATION,
    RESERVE,
    WireMutation,
    WireOutcome,
    refusal,
)

if TYPE_CHECKING:
    from matchday.inventory.ledger import SkuLedger


class ChannelStock:
    __slots__ = ("held", "max_percent", "max_units", "sold")

    def __init__(
        self,
        max_units: int | None = None,
        max_percent: int | None = None,
        held: int = 0,
        sold: int = 0,
    ) -> None:
        self.max_units = max_units
        self.max_percent = max_percent
        self.held = held
        self.sold = sold

    def cap(self, on_hand: int) -> int | None:
        """The most units the channel may hold and have sold; None: no allocation."""
        if self.max_units is not None:
            return self.max_units
        if self.max_percent is not None:
            return on_hand * self.max_percent // 100
        return None

    def remaining(self, on_hand: int) -> int | None:
        """Units the allocation still lets the channel take (not what is in stock)."""
        cap = self.cap(on_hand)
        return None if cap is None else max(cap - self.held - self.sold, 0)

    def row(self) -> tuple[int | None, int | None, int, int]:
        return (self.max_units, self.max_percent, self.held, self.sold)


# -- SkuLedger's channel methods ------------------------------------------------------------


def load_channel(self: SkuLedger, channel: str, stock: ChannelStock) -> None:
    if self.channels is None:
        self.channels = {}
    self.channels[channel] = stock


def reserve_channel(self: SkuLedger, ch: Changes, m: WireMutation, now: float) -> WireOutcome:
    """A reserve by channel ``m[7]``: its allocation, then every limit a reserve meets.
    Not a shop cart: no cart fence applies to it."""
    qty, channel = m[3], m[7]
    cs = None if self.channels is None else self.channels.get(channel)
    if cs is not None:
        left = cs.remaining(self.on_hand)
        if left is not None and qty > left:
            return refusal(AllocationExceeded, self.sku, channel, qty, left)
    before = self.on_hand - self.reserved - self.sold
    refused = self._refusal(qty, qty, m[5], before)
    if refused is not None:
        return refused
    rid = ch.new_id(m[1])
    r = (RESERVATION, rid, self.sku, qty, m[4], m[5], now + m[6], "held", None, channel)
    self.held[rid] = r
    self.reserved += qty
    if self.customer_units is not None:
        self._add_units(ch, m[5], qty)
    channel_moved(self, ch, r, qty, 0)
    ch.created[rid] = r
    ch.touched[self.sku] = self
    ch.entries.append((RESERVE, m[1], self.sku, rid, qty, before, before - qty, r[R_EXPIRES]))
    return r


def allocate(self: SkuLedger, ch: Changes, m: WireMutation, now: float) -> WireOutcome:
    """Set channel ``m[3]``'s allocation (``None, None``: none). Holds stay."""
    cs = _share(self, m[3])
    cs.max_units, cs.max_percent = m[4], m[5]
    ch.channels.add(self.sku)
    before = self.on_hand - self.reserved - self.sold
    self._log_stock(ch, ALLOCATE, m[1], m[4] if m[4] is not None else m[5], before, m[3])
    return self.stock_wire()


def channel_view(self: SkuLedger, channel: str) -> tuple[int | None, int | None, int, int]:
    """(max_units, max_percent, held, sold) of a channel here."""
    cs = None if self.channels is None else self.channels.get(channel)
    return (None, None, 0, 0) if cs is None else cs.row()


def channel_moved(self: SkuLedger, ch: Changes, r: Reservation, held: int, sold: int) -> None:
    """A channel's hold ``r`` took ``held`` more units held and ``sold`` more sold."""
    cs = _share(self, r[R_CHANNEL])
    cs.held += held
    cs.sold += sold
    ch.channels.add(self.sku)


def _share(self: SkuLedger, channel: str) -> ChannelStock:
    channels = self.channels
    if channels is None:
        channels = self.channels = {}
    cs = channels.get(channel)
    if cs is None:
        cs = channels[channel] = ChannelStock()
    return cs
