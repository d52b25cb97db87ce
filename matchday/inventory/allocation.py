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
"""

from __future__ import annotations


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
