"""The options of every long-lived matchday actor, in one place (issue 14, item 5).

The shards, the event publisher and the payments and supplier workers are all started the
same way: named in the cluster's namespace, so every process finds the same one; detached,
so they outlive the driver that created them; ``get_if_exists``, so a second start finds
the first instead of failing; restarted by Ray without limit, with calls that were in
flight sent again (safe: each one recovers its state from PostgreSQL and answers a repeated
request id with its first answer); and no CPU reserved, since they wait on I/O.
"""

from __future__ import annotations

from typing import Any

from matchday.settings import Settings

# What makes an actor one of ours: a caller adds to these, never changes them.
POLICY: dict[str, Any] = {
    "lifetime": "detached",
    "get_if_exists": True,
    "max_restarts": -1,
    "max_task_retries": -1,
    "num_cpus": 0,
}


def detached_options(name: str, settings: Settings, /, **more: Any) -> dict[str, Any]:
    """Ray actor options for the long-lived actor ``name``; ``more`` adds options (a
    concurrency limit, resources that pin it to some nodes), never overrides the policy."""
    clash = sorted(set(more) & ({"name", "namespace"} | set(POLICY)))
    if clash:
        raise ValueError(f"detached actors keep their own {', '.join(clash)}")
    return {"name": name, "namespace": settings.namespace, **POLICY, **more}
