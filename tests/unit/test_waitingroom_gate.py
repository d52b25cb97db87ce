"""The pass check of add-to-cart and checkout: free for SKUs outside drops, strict inside."""

from __future__ import annotations

import pytest

from matchday.domain.errors import Unavailable
from matchday.waitingroom.errors import PassRequired, TokenExpired, TokenRefused
from matchday.waitingroom.gate import CHECKOUT_GRACE_S, PassGate
from matchday.waitingroom.tokens import Tokens
from tests.fakes import ManualClock

SECRET = "g" * 40
DROP, OTHER = "d_aaaaaaaaaaaaaaaa", "d_bbbbbbbbbbbbbbbb"


class Live:
    def __init__(self) -> None:
        self.skus = {"JERSEY-M": DROP, "CAP": OTHER}
        self.reads = 0
        self.fail = False

    async def __call__(self) -> dict[str, str]:
        self.reads += 1
        if self.fail:
            raise Unavailable("down")
        return dict(self.skus)


def gate() -> tuple[PassGate, Live, ManualClock, Tokens]:
    clock, live, tokens = ManualClock(), Live(), Tokens(SECRET)
    return PassGate(live, tokens, clock, monotonic=clock.now), live, clock, tokens


async def test_a_sku_in_no_drop_needs_nothing_once_the_map_is_loaded() -> None:
    g, live, _, _ = gate()
    assert g.needs("SCARF")  # never loaded yet
    assert await g.require("SCARF", None, "fan") is None
    assert not g.needs("SCARF")
    assert g.needs("JERSEY-M")
    assert live.reads == 1


async def test_a_drop_sku_needs_a_live_pass_of_its_drop_and_shopper() -> None:
    g, _, clock, tokens = gate()
    good = tokens.pass_(DROP, "fan", clock.now() + 60)
    assert await g.require("JERSEY-M", good, "fan") == DROP
    with pytest.raises(PassRequired):
        await g.require("JERSEY-M", None, "fan")
    with pytest.raises(TokenRefused):
        await g.require("JERSEY-M", good, "thief")
    with pytest.raises(TokenRefused):  # a pass of another drop
        await g.require("CAP", good, "fan")
    both = f"{good}, {tokens.pass_(OTHER, 'fan', clock.now() + 60)}"
    assert await g.require("CAP", both, "fan") == OTHER
    clock.advance(61)
    with pytest.raises(TokenExpired):
        await g.require("JERSEY-M", good, "fan")


async def test_checkout_accepts_a_pass_for_a_while_after_it_expired() -> None:
    g, _, clock, tokens = gate()
    good = tokens.pass_(DROP, "fan", clock.now() + 60)
    clock.advance(60 + CHECKOUT_GRACE_S - 1)
    await g.require_all(["JERSEY-M", "SCARF"], good, "fan")
    clock.advance(2)
    with pytest.raises(TokenExpired):
        await g.require_all(["JERSEY-M"], good, "fan")


async def test_the_map_is_refreshed_and_kept_when_a_refresh_fails() -> None:
    g, live, clock, _ = gate()
    await g.fresh()
    live.skus["SCARF"] = DROP
    clock.advance(1.0)
    assert await g.require("SCARF", None, "fan") is None  # not yet refreshed
    clock.advance(1.1)
    with pytest.raises(PassRequired):
        await g.require("SCARF", None, "fan")
    live.fail = True
    clock.advance(2.1)
    with pytest.raises(PassRequired):  # the map in hand still binds the SKU
        await g.require("SCARF", None, "fan")


async def test_a_map_never_loaded_refuses_rather_than_sell_ungated() -> None:
    g, live, _, _ = gate()
    live.fail = True
    with pytest.raises(Unavailable):
        await g.require("JERSEY-M", None, "fan")
