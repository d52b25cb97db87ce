"""A SKU's price as checkout needs it: one type shared by the catalogue that answers and the
shop that asks (a NamedTuple, so it crosses no serialisation boundary as anything else)."""

from __future__ import annotations

from typing import NamedTuple


class PriceInfo(NamedTuple):
    """CatalogService.price_of's answer for one SKU of an active product."""

    price_cents: int
    currency: str
    name: str
    size: str | None
    colour: str | None

    @property
    def title(self) -> str:
        """What an order line is called: "Home Jersey / Blue / M"."""
        return " / ".join(part for part in (self.name, self.colour, self.size) if part)
