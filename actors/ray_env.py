"""Ray's environment switches matchday sets before ``import ray`` (no Ray import here)."""

from __future__ import annotations

import os


def keep_ray_on_loopback() -> None:
    """Make a single-machine Ray listen on 127.0.0.1 only. Call before ``import ray``.

    On Linux Ray binds its GCS, raylet and workers on every interface and advertises the
    machine's address (it assumes a cluster). This switch is the one Ray itself uses on
    laptops (macOS, Windows): the node address becomes 127.0.0.1 and so does every
    listener. A multi-node cluster (``MATCHDAY_RAY_ADDRESS`` set) must not use it. ADR 0004.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
