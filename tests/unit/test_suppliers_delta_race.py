"""A supplier's delta down races a sale and a restock, through the real shard core.

The applier reads matchday's counters (for its report) and only then calls the engine. A
sale committed and a restock made between the two must both survive: the delta is applied
by the engine against its own count (``adjust``), not set from the count read before.
"""

from __future__ import annotations

from collections.abc import Collection

from matchday.inventory.client import InventoryClient
from matchday.inventory.routing import Router
from matchday.inventory.shard import ShardCore
from matchday.suppliers.apply import Applier
from matchday.suppliers.model import DELTA, Counters, FeedLine, Mapping
from tests.fakes import FakeShardRepository, ManualClock

SKU = "GLOVE-9"


class ReaderThenRace:
    """Counters as the engine has them; right after the read, the shop sells 2 units and a
    warehouse restocks 7: what a busy SKU does between a read and a write."""

    def __init__(self, core: ShardCore, engine: InventoryClient) -> None:
        self.core, self.engine = core, engine

    async def counters(self, skus: Collection[str]) -> dict[str, Counters]:
        ledger = self.core.ledgers[SKU]
        read = {SKU: Counters(ledger.on_hand, ledger.reserved, ledger.sold)}
        held = await self.engine.reserve("sale-r", SKU, 2, "cart-1", "fan-1", 300.0)
        await self.engine.commit("sale-c", SKU, held.reservation_id, "order-1")
        await self.engine.restock("restock-1", SKU, 7)
        return read


async def test_a_delta_down_loses_neither_a_sale_nor_a_restock_made_meanwhile() -> None:
    repo = FakeShardRepository()
    repo.add_sku(SKU, 20)
    core = ShardCore(0, Router(1), repo, clock=ManualClock())
    await core.start()
    engine = InventoryClient(lambda _shard, batch: core.apply_wire(batch), Router(1), linger_s=0.0)
    applier = Applier(engine, ReaderThenRace(core, engine))
    mapping = {"g9": Mapping("g9", SKU, None)}
    prepared = await applier.prepare(("acme", "push", "m-1"), [FeedLine(1, "g9", DELTA, -5)],
                                     mapping, 100.0, {})  # fmt: skip
    results, failure = await applier.execute(prepared.todo)
    assert failure is None and results[0].status == "applied"
    ledger = core.ledgers[SKU]
    # 20 unsold, 2 sold, 7 restocked, 5 fewer by the supplier: 20 units unsold, 2 sold.
    assert (ledger.on_hand - ledger.sold, ledger.sold) == (20, 2)
    assert results[0].after == 20
    # Applying the same line again (a retried message) changes nothing.
    again, _ = await applier.execute(prepared.todo)
    assert again[0].after == 20 and ledger.on_hand - ledger.sold == 20
