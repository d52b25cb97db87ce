"""Connect an :class:`InventoryClient` to the shard actors, and start those actors."""

from __future__ import annotations

import contextlib
from typing import Any

import ray

from actors.detached import detached_options
from actors.inventory import InventoryShard, shard_name
from actors.publisher import PUBLISHER_NAME, EventPublisher
from actors.shard_link import ShardLinks, endpoint_of
from matchday.inventory.client import InventoryClient
from matchday.inventory.routing import Router
from matchday.inventory.wire import WireMutation, WireOutcome
from matchday.settings import Settings

# Thousands of callers wait on a shard at once; each is a coroutine, not a thread.
SHARD_MAX_CONCURRENCY = 10_000


def start_inventory(
    settings: Settings, *, shard_options: dict[str, Any] | None = None
) -> dict[int, Any]:
    """Create (or find) every shard actor and the event publisher; wait until they answer.

    ``shard_options`` adds Ray actor options to the shards, e.g. ``resources`` that pin them
    to the nodes which provide those resources (where Ray also restarts them).
    """
    payload = settings.payload()
    shard_cls = ray.remote(InventoryShard)
    handles: dict[int, Any] = {}
    router = Router(settings.shards, settings.dedicated_shards)
    for sid in router.all_shards:
        handles[sid] = shard_cls.options(
            **detached_options(
                shard_name(sid),
                settings,
                max_concurrency=SHARD_MAX_CONCURRENCY,
                **(shard_options or {}),
            )
        ).remote(sid, payload)
    publisher_cls = ray.remote(EventPublisher)
    publisher: Any = publisher_cls.options(**detached_options(PUBLISHER_NAME, settings)).remote(
        payload
    )
    ray.get([h.ready.remote() for h in handles.values()] + [publisher.start.remote()])
    return handles


def shard_handles(settings: Settings) -> dict[int, Any]:
    router = Router(settings.shards, settings.dedicated_shards)
    return {
        sid: ray.get_actor(shard_name(sid), namespace=settings.namespace)
        for sid in router.all_shards
    }


def connect_client(settings: Settings, handles: dict[int, Any] | None = None) -> InventoryClient:
    """A client for this process (a Serve replica, the CLI, a test, the benchmark)."""
    handles = handles or shard_handles(settings)

    async def over_ray(shard_id: int, batch: list[WireMutation]) -> list[WireOutcome]:
        result: list[WireOutcome] = await handles[shard_id].apply.remote(batch)
        return result

    send = ShardLinks(endpoint_of(handles), over_ray).send if settings.shard_link else over_ray
    return InventoryClient(
        send,
        Router(settings.shards, settings.dedicated_shards),
        max_batch=settings.max_batch,
        in_flight=settings.client_in_flight,
        linger_s=settings.client_linger_ms / 1000,
        policy=settings.policy(),
    )


def stop_inventory(settings: Settings) -> None:
    for name in [
        shard_name(s) for s in Router(settings.shards, settings.dedicated_shards).all_shards
    ] + [PUBLISHER_NAME]:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace=settings.namespace), no_restart=True)
