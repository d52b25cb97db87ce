"""What the `matchday` subcommands share: finding the running stack, printing an answer.

Its own module so that cluster/cli.py (which registers the subcommands) and each
subcommand's module (admin_cli, backup_cli, reports_cli, suppliers_cli) import it, not each
other (issue 14: there was a cycle through cli.py's private helpers).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any

from matchday.settings import Settings


def resolve(settings: Settings) -> Settings:
    """``settings`` completed from the running stack's stack.json (servers, Ray, routing)."""
    from matchday.ops.stack_state import load_state

    state = load_state(settings) or {}
    update = {}
    for key in ("database_url", "redis_url", "ray_address"):
        if not getattr(settings, key) and state.get(key):
            update[key] = state[key]
    # The running shards decide the routing, whatever this shell's environment says.
    for key in ("shards", "dedicated_shards"):
        if key in state:
            update[key] = state[key]
    if not (settings.database_url or update.get("database_url")):
        raise SystemExit("no running stack found: start one with `matchday run` (or `make run`)")
    return settings.model_copy(update=update)


def print_json(obj: Any) -> None:
    """A command's answer on stdout, as indented JSON (dataclasses as dicts)."""
    print(
        json.dumps(
            asdict(obj) if hasattr(obj, "__dataclass_fields__") else obj, indent=2, default=str
        )
    )


def with_ray(settings: Settings, work: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``work((client, shard handles))`` attached to the stack's Ray, then detach."""
    import logging

    import ray

    from actors.client import connect_client, shard_handles

    if not settings.ray_address:
        raise SystemExit("no running Ray cluster found: start one with `matchday run`")
    ray.init(
        address=settings.ray_address,
        namespace=settings.namespace,
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    try:
        handles = shard_handles(settings)
        return asyncio.run(work((connect_client(settings, handles), handles)))
    finally:
        ray.shutdown()
