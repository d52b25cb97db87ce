"""An add's engine request id is tagged with its cart's creation time (ADR 0039).

The tag is what a retry must reproduce to name the same hold: read from the cart, it is the
same on any replica, at any later time, whether or not the first answer was remembered.
"""

from __future__ import annotations

import re

from matchday.inventory.ids import reservation_id, tagged
from matchday.shop.carts import CartService
from tests.unit.checkout_harness import HOLD_TTL_S, Shop


def replica(shop: Shop) -> CartService:
    """A shop replica's cart service: its own memo, the shared store and engine."""
    return CartService(shop.store, shop.stock, shop.prices, hold_ttl_s=HOLD_TTL_S)


async def test_an_add_holds_a_hold_led_by_its_carts_creation_time() -> None:
    shop = Shop(skus="A")
    cart = await shop.store.create_cart("c_tag", "cust")
    shop.clock.advance(42.0)  # the add comes later: the tag is still the cart's
    view = await replica(shop).add("cust", cart.cart_id, "A", 1, "key-1")
    request_id = tagged(f"add:{cart.cart_id}:key-1", cart.created_at)
    assert view.reservation_id == reservation_id(request_id)
    tag = f"{round(cart.created_at * 1000):011x}"
    assert re.fullmatch(rf"t{tag}\.[0-9a-f]{{8}}\.[0-9a-f]{{8}}", view.reservation_id)


async def test_the_same_key_on_another_replica_or_after_a_restart_names_the_same_hold() -> None:
    shop = Shop(skus="A")
    cart = await shop.store.create_cart("c_retry", "cust")
    first = await replica(shop).add("cust", cart.cart_id, "A", 1, "key-1")
    shop.clock.advance(3600.0)
    again = await replica(shop).add("cust", cart.cart_id, "A", 1, "key-1")  # a fresh memo
    await shop.core.start()  # the shard restarts: its answers are gone, the hold is not
    late = await replica(shop).add("cust", cart.cart_id, "A", 1, "key-1")
    assert first == again == late
    assert shop.units("A") == (5, 1, 0)
    other = await replica(shop).add("cust", cart.cart_id, "A", 1, "key-2")
    assert other.reservation_id != first.reservation_id
    assert other.reservation_id[:13] == first.reservation_id[:13]  # the cart's tag
    assert shop.units("A") == (5, 2, 0)
