"""What the `matchday` subcommands share: finding the running stack, printing an answer,
the operator an audit entry names, an input model built from command-line values.

Its own module so that cluster/cli.py (which registers the subcommands) and each
subcommand's module (admin_cli, backup_cli, channels_cli, drops_cli, reports_cli,
screenshots, suppliers_cli) import it, not each other (issue 14: there was a cycle through
cli.py's private helpers, and the subcommands borrowed each other's).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any, TypeVar

from matchday.admin.records import AdminIdentity
from matchday.settings import Settings

T = TypeVar("T")


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


def cli_operator() -> AdminIdentity:
    """Who an audit entry of a CLI command names: no key id, the operator's login as client."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers; the audit entry still matters
        user = "unknown"
    return AdminIdentity(None, "cli", client=f"cli:{user}@{socket.gethostname()}")


def validated_model(cls: type[T], **values: Any) -> T:
    """``cls(**values)``; bad values are an :class:`InvalidInput` (exit 1, the reason on
    stderr in matchday's error shape), never a traceback."""
    from pydantic import ValidationError

    from matchday.domain.errors import InvalidInput

    try:
        return cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        raise InvalidInput(where, first["msg"]) from None
