"""Deployment options, in one place; ``serve_config.yaml`` overrides them per deployment.

``max_ongoing_requests`` bounds the work a replica takes on at once; ``max_queued_requests``
bounds what waits for one, and beyond it Serve answers 503 with Retry-After at once (load
shedding) instead of letting latency grow without bound during a surge.
"""

from __future__ import annotations

from typing import Any

from ray.serve.config import BackpressureConfig


def autoscaled(
    *, min_replicas: int, max_replicas: int, target: float, ongoing: int, queued: int
) -> dict[str, Any]:
    return {
        "max_ongoing_requests": ongoing,
        "max_queued_requests": queued,
        "autoscaling_config": {
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "target_ongoing_requests": target,
            "upscale_delay_s": 3,
            "downscale_delay_s": 60,
        },
        # Shed load as 503 + Retry-After: 1 s is about how long a replica's queue takes to
        # drain at the hot-SKU rates measured in the README.
        "backpressure_config": BackpressureConfig(status_code=503, retry_after_s=1),
        "ray_actor_options": {"num_cpus": 0.1},
        "health_check_period_s": 5,
        "graceful_shutdown_timeout_s": 10,
    }


# Browsing is cheap per request (Redis reads) and the bulk of a surge's traffic.
CATALOG = autoscaled(min_replicas=1, max_replicas=8, target=64, ongoing=256, queued=1024)
# Add-to-cart: each request waits on one coalesced engine call, so many can be in flight.
SHOP = autoscaled(min_replicas=1, max_replicas=8, target=128, ongoing=512, queued=2048)
ORDERS = autoscaled(min_replicas=1, max_replicas=4, target=32, ongoing=128, queued=512)
ADMIN = autoscaled(min_replicas=1, max_replicas=2, target=8, ongoing=32, queued=64)
# Supplier pushes: a message a few seconds per supplier, each one engine call per line.
# Suppliers retry, so shedding a burst as 503 + Retry-After loses nothing (ADR 0025).
SUPPLIERS = autoscaled(min_replicas=1, max_replicas=2, target=16, ongoing=64, queued=256)
# Marketplaces retry too (a 503 carries Retry-After); an order is a few engine calls.
CHANNELS = autoscaled(min_replicas=1, max_replicas=2, target=32, ongoing=128, queued=512)
# Votes are one Lua call in Redis each; results streams hold a request open for minutes.
POLLS = autoscaled(min_replicas=1, max_replicas=4, target=64, ongoing=256, queued=1024)
# Static files from memory: cheap per request, and a CDN takes most of them in production.
STOREFRONT = autoscaled(min_replicas=1, max_replicas=4, target=64, ongoing=256, queued=1024)
# Webhooks are a trickle next to checkouts: Stripe retries for days, so shedding is safe.
WEBHOOKS = autoscaled(min_replicas=1, max_replicas=2, target=16, ongoing=64, queued=256)
# The test gateway keeps its idempotency memory in the replica: exactly one of it.
PAYMENTS: dict[str, Any] = {
    "num_replicas": 1,
    "max_ongoing_requests": 256,
    "max_queued_requests": 1024,
    "ray_actor_options": {"num_cpus": 0.1},
}
