"""A node of a simulated multi-node Ray cluster dies while fans buy one hot SKU.

Run by tests/integration/test_multinode_failover.py in a process of its own (one Ray per
process: the test session may already have initialised its own). Reads a JSON object on
stdin, ``{"settings": Settings.payload(), "sku", "stock", "fans", "report": path}``, and
writes one JSON report to that path (stdout carries Ray's own messages): the ledger of
acknowledged answers and where the shards ran before and after. The test checks that
ledger against PostgreSQL.

Layout: a head node (the driver, the event publisher), worker node A and, added once the
shards are placed, a spare node B. Only A and B provide ``shardnode``, and the shards ask for
it, so they start on A and Ray can restart them only on B.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from typing import Any

SHARD_RESOURCE = "shardnode"
THINK_S = 0.05
# The load stops once the restarted shards have acknowledged this many holds.
ACKS_AFTER_RESTART = 150
# GCS declares a node dead after health_check_failure_threshold missed checks; Ray's defaults
# (3 s x 5) would leave the shards unreachable for ~15 s. 0.5 s x 3 keeps the test short.
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def actor_nodes(ray: Any, handles: dict[int, Any]) -> dict[int, dict[str, Any]]:
    """Each shard's node, state and restart count, from the GCS actor table."""
    out = {}
    for sid, handle in handles.items():
        row = ray._private.state.state.actor_table(handle._actor_id.hex())
        out[sid] = {
            "node": row["Address"]["NodeID"],
            "state": row["State"],
            "restarts": row.get("NumRestarts", 0),
        }
    return out


async def drive(
    clients: list[Any], sku: str, fans: int, ledger: dict[str, Any], stop: asyncio.Event
) -> None:
    """Fans reserve one unit; two in three pay for it at once, the rest keep it held.

    A fan retries a retryable error with the same request id, as a shopper's browser would
    with its Idempotency-Key: every hold is then either acknowledged or refused, never left
    unknown, so PostgreSQL must hold exactly what the ledger holds.
    """
    from matchday.domain.errors import OutOfStock
    from matchday.inventory.commands import Commit, Reserve

    async def until_final(client: Any, m: Any) -> Any:
        while True:
            out = await client.submit(m)
            if out.error is None or not out.error.retryable:
                return out
            ledger["retried"] += 1
            await asyncio.sleep(0.1)

    async def fan(n: int) -> None:
        client = clients[n % len(clients)]
        while not stop.is_set():
            m = Reserve(uid("rq"), sku, 1, uid("cart"), uid("fan"), 600)
            out = await until_final(client, m)
            if isinstance(out.error, OutOfStock):
                return
            if out.error is not None:
                ledger["errors"].append(repr(out.error))
                continue
            rid = out.value.reservation_id
            ledger["reserved"][rid] = time.monotonic()
            # A fan pauses between purchases: the load then spans the node's death and the
            # restarts instead of selling out in the second before GCS notices.
            await asyncio.sleep(THINK_S)
            if n % 3 == 2:
                continue  # this fan leaves the unit held in a cart
            order = uid("order")
            done = await until_final(client, Commit(uid("rq"), sku, rid, order))
            if done.error is None:
                ledger["sold"][rid] = order
            else:
                ledger["errors"].append(repr(done.error))

    await asyncio.gather(*(fan(n) for n in range(fans)))


async def scenario(ray: Any, cluster: Any, job: dict[str, Any]) -> dict[str, Any]:
    from actors.client import connect_client, start_inventory, stop_inventory
    from matchday.settings import Settings

    s = Settings(**job["settings"])
    sku, fans, stock = job["sku"], job["fans"], job["stock"]
    node_a = cluster.add_node(num_cpus=1, resources={SHARD_RESOURCE: 10})
    handles = start_inventory(s, shard_options={"resources": {SHARD_RESOURCE: 1}})
    try:
        before = actor_nodes(ray, handles)
        node_b = cluster.add_node(num_cpus=1, resources={SHARD_RESOURCE: 10})
        epochs_before = {sid: (await h.stats.remote())["epoch"] for sid, h in handles.items()}
        clients = [connect_client(s, handles) for _ in range(3)]  # three Serve replicas
        ledger: dict[str, Any] = {"reserved": {}, "sold": {}, "errors": [], "retried": 0}
        stop = asyncio.Event()
        started_at = time.monotonic()
        load = asyncio.create_task(drive(clients, sku, fans, ledger, stop))
        # Remove A once sales flow, with more still in flight.
        while not load.done() and len(ledger["reserved"]) < stock // 20:
            await asyncio.sleep(0.01)
        acked_at_removal = len(ledger["reserved"])
        removed_at = time.monotonic()
        # Not graceful: A's raylet and its workers are killed as if the machine died.
        await asyncio.to_thread(cluster.remove_node, node_a, False)
        # Until GCS declares A dead, A's orphaned workers may still answer (their epoch
        # fences them out in PostgreSQL); wait for the restarts Ray makes elsewhere.
        restarted_at = None
        while restarted_at is None and time.monotonic() - removed_at < 60:
            nodes = actor_nodes(ray, handles)
            if all(v["state"] == "ALIVE" and v["node"] != node_a.node_id for v in nodes.values()):
                restarted_at = time.monotonic()
            await asyncio.sleep(0.05)
        try:
            while not load.done() and (
                restarted_at is None
                or sum(t > restarted_at for t in ledger["reserved"].values()) < ACKS_AFTER_RESTART
            ):
                await asyncio.sleep(0.05)
        finally:
            stop.set()
        await asyncio.wait_for(load, 60)  # each fan finishes the purchase it started
        ended_at = time.monotonic()
        first_after = min((t for t in ledger["reserved"].values() if t > removed_at), default=0)
        after_restart = sum(t > (restarted_at or ended_at) for t in ledger["reserved"].values())
        after = actor_nodes(ray, handles)
        epochs_after = {sid: (await h.stats.remote())["epoch"] for sid, h in handles.items()}
        return {
            "node_a": node_a.node_id,
            "node_b": node_b.node_id,
            "before": before,
            "after": after,
            "epochs_before": epochs_before,
            "epochs_after": epochs_after,
            "acked_at_removal": acked_at_removal,
            "reserved": sorted(ledger["reserved"]),
            "sold": ledger["sold"],
            "errors": ledger["errors"],
            "retried": ledger["retried"],
            "acked_after_restart": after_restart,
            "restart_s": round(restarted_at - removed_at, 2) if restarted_at else None,
            "first_ack_after_removal_s": round(first_after - removed_at, 2)
            if first_after
            else None,
            "load_s": round(ended_at - started_at, 2),
        }
    finally:
        stop_inventory(s)


def main() -> None:
    job = json.load(sys.stdin)
    # A private Ray temp dir: Cluster() records its address in <temp>/ray/ray_current_cluster,
    # and a bare ray.init() in any other process on this machine would join that cluster.
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="mdray-")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, loopback-only cluster
    from actors.ray_env import keep_ray_on_loopback

    keep_ray_on_loopback()
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "_system_config": FAST_HEALTH_CHECKS,
        },
    )
    try:
        ray.init(
            address=cluster.address,
            namespace=job["settings"]["namespace"],
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        report = asyncio.run(scenario(ray, cluster, job))
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
    with open(job["report"], "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
