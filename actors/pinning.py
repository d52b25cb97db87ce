"""Pin a hot SKU to a dedicated shard, or unpin it, while traffic flows.

Order matters only for speed, not safety: the pin row is written first (so any shard that
loads the SKU afterwards routes it correctly), every other shard forgets it, the new owner
claims it (fencing the old owner's row). A client with stale routing is redirected by
WrongShard. See docs/adr/0001-inventory-engine.md.

A failed shard call never reaches the caller as a Ray error (actors/remote.py): a shard that
is down or restarting is a retryable ``Unavailable`` (running the same pin again is safe), and
a pin changed by a concurrent request while this one ran is a ``Conflict`` that says so.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Protocol

from actors.remote import call
from matchday.domain.errors import Conflict, InvalidInput, UnknownSku, WrongShard
from matchday.inventory.commands import check_sku
from matchday.inventory.routing import Router


class PinRows(Protocol):
    """Where pins are recorded (the engine's ``sku_pins``; bootstrap.engine_rows)."""

    async def pins(self) -> dict[str, int]: ...

    async def set_pin(self, sku: str, shard_id: int | None) -> int | None:
        """Pin (or with None unpin) a SKU; returns the shard that owned it before."""
        ...


async def pin_sku(
    repo: PinRows,
    router: Router,
    handles: dict[int, Any],
    sku: str,
    shard: int | None = None,
) -> int:
    check_sku(sku)
    if shard is None:
        if not router.dedicated:
            raise InvalidInput(
                "shard", "no dedicated shards are configured (MATCHDAY_DEDICATED_SHARDS)"
            )
        load = Counter((await repo.pins()).values())
        shard = min(router.dedicated, key=lambda s: (load[s], s))
    if shard not in router.all_shards:
        raise InvalidInput("shard", f"must be one of {router.all_shards}")
    return await _move(repo, router, handles, sku, shard, pin=shard)


async def unpin_sku(repo: PinRows, router: Router, handles: dict[int, Any], sku: str) -> int:
    check_sku(sku)
    return await _move(repo, router, handles, sku, router.ring.owner(sku), pin=None)


async def _move(
    repo: PinRows,
    router: Router,
    handles: dict[int, Any],
    sku: str,
    to: int,
    pin: int | None,
) -> int:
    if await repo.set_pin(sku, pin) is None:
        raise UnknownSku(sku)
    # Every other shard forgets the SKU, not only the last one whose claim committed: with a
    # concurrent move in flight, a shard can hold it in memory before its claim lands, and a
    # stale holder answered a release from memory (404 unknown_reservation, seen in
    # tests/e2e/test_errors_serve.py). A shard's evict waits for its loads (the shard's
    # lock) and runs after our pin row committed, so no holder but ``to`` survives it; and a
    # shard that read the old pin just before ours committed claims nothing (its claim reads
    # the pin again after locking the SKU's row, which set_pin locks too).
    await asyncio.gather(
        *(call(h.evict.remote([sku]), f"inventory shard {sid}") for sid, h in handles.items()
          if sid != to)
    )  # fmt: skip
    try:
        await call(handles[to].adopt.remote([sku]), f"inventory shard {to}")
    except WrongShard as exc:
        # The pin row no longer routes the SKU to ``to``: another pin or unpin of it
        # committed after ours. Its answer stands; ours would name the wrong shard.
        raise Conflict(
            f"{sku} was {'pinned' if pin is None else 'unpinned or pinned elsewhere'} by a "
            f"concurrent request and is served by shard {exc.owner} now; GET /pins shows it"
        ) from None
    return to
