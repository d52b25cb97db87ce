"""The consistent-hash ring and the router that lets operator pins override it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from matchday.inventory.routing import HashRing, Router

SKUS = [f"SKU-{i:05d}" for i in range(10_000)]


def shard_sizes(ring: HashRing) -> Counter[int]:
    return Counter(ring.owner(s) for s in SKUS)


def test_two_rings_over_the_same_shards_agree_on_every_sku() -> None:
    a = HashRing([0, 1, 2, 3, 4])
    b = HashRing([4, 3, 2, 1, 0])  # order of the shard list does not matter

    assert all(a.owner(s) == b.owner(s) for s in SKUS)
    assert a.shard_ids == b.shard_ids == (0, 1, 2, 3, 4)


def test_two_routers_with_the_same_shape_route_every_sku_alike() -> None:
    a = Router(8)
    b = Router(8)

    assert [a.owner(s) for s in SKUS[:2000]] == [b.owner(s) for s in SKUS[:2000]]


def test_the_owner_is_the_same_in_processes_with_different_hash_salts() -> None:
    # blake2b, not hash(): every Serve replica and shard process must agree on owners.
    script = (
        "from matchday.inventory.routing import HashRing\n"
        "r = HashRing(list(range(16)))\n"
        "print(','.join(str(r.owner(f'SKU-{i:05d}')) for i in range(500)))\n"
    )
    here = ",".join(str(HashRing(list(range(16))).owner(s)) for s in SKUS[:500])

    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here


def test_a_ring_without_shards_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one shard"):
        HashRing([])


def test_a_ring_of_one_shard_owns_everything() -> None:
    assert set(shard_sizes(HashRing([7]))) == {7}


@pytest.mark.parametrize("n", range(1, 17))
def test_the_ring_spreads_10k_skus_with_the_largest_shard_within_15_percent_of_the_mean(
    n: int,
) -> None:
    sizes = shard_sizes(HashRing(list(range(n))))

    assert set(sizes) == set(range(n)), "every shard owns some SKUs"
    mean = len(SKUS) / n
    assert max(sizes.values()) <= 1.15 * mean, sizes


@pytest.mark.parametrize("n", range(2, 17))
def test_adding_a_shard_moves_only_a_small_fraction_of_skus_and_only_to_the_new_shard(
    n: int,
) -> None:
    before = HashRing(list(range(n - 1)))
    after = HashRing(list(range(n)))

    moved = [s for s in SKUS if before.owner(s) != after.owner(s)]

    assert len(moved) / len(SKUS) < 1 / n + 0.05
    assert moved, "the new shard takes some SKUs"
    assert {after.owner(s) for s in moved} == {n - 1}


def test_removing_a_shard_moves_only_the_skus_it_owned() -> None:
    full = HashRing([0, 1, 2, 3, 4, 5])
    without_3 = HashRing([0, 1, 2, 4, 5])

    for s in SKUS:
        if full.owner(s) != 3:
            assert without_3.owner(s) == full.owner(s)
        else:
            assert without_3.owner(s) != 3


def test_a_pin_overrides_the_ring_for_that_sku_only() -> None:
    plain = Router(4, dedicated_shards=2)
    hot = next(s for s in SKUS if plain.owner(s) == 0)
    router = Router(4, dedicated_shards=2, pins={hot: 5, "SKU-00001": 1})

    assert router.owner(hot) == 5
    assert router.owner("SKU-00001") == 1
    assert all(router.owner(s) == plain.owner(s) for s in SKUS if s not in (hot, "SKU-00001"))


def test_a_router_copies_its_pins_so_the_callers_mapping_can_change_freely() -> None:
    pins = {"SKU-00042": 4}
    router = Router(4, dedicated_shards=1, pins=pins)
    pins["SKU-00042"] = 0
    pins["SKU-00043"] = 4

    assert router.owner("SKU-00042") == 4
    assert router.owner("SKU-00043") == router.ring.owner("SKU-00043")


def test_dedicated_shards_follow_the_ring_shards_and_take_no_unpinned_skus() -> None:
    router = Router(4, dedicated_shards=2)

    assert router.all_shards == [0, 1, 2, 3, 4, 5]
    assert router.dedicated == [4, 5]
    assert {router.owner(s) for s in SKUS} == {0, 1, 2, 3}


def test_owner_given_pin_uses_the_pin_when_present_and_the_ring_otherwise() -> None:
    router = Router(4, dedicated_shards=1, pins={"SKU-00007": 4})

    assert router.owner_given_pin("SKU-00007", None) == router.ring.owner("SKU-00007")
    assert router.owner_given_pin("SKU-00008", 4) == 4
    assert router.owner_given_pin("SKU-00008", 0) == 0
