"""The add lane's requests counted where a Serve replica counts its own (ADR 0033):
``cluster.serve_hook._LaneCounts`` against Ray 2.60's own request metadata and protocol.

Through a running stack (Ray's Prometheus endpoint): tests/e2e/ingress/test_add_lane.py.
"""

from __future__ import annotations

from typing import Any

from ray.serve._private import replica as ray_replica

from cluster.serve_hook import _LaneCounts


class Manager:
    """What the hook calls on Ray's ReplicaMetricsManager, recorded."""

    def __init__(self) -> None:
        self.ongoing = 0
        self.metas: list[Any] = []
        self.recorded: list[dict[str, Any]] = []

    def inc_num_ongoing_requests(self, meta: Any) -> None:
        self.ongoing += 1
        self.metas.append(meta)

    def dec_num_ongoing_requests(self, meta: Any) -> None:
        self.ongoing -= 1

    def record_ingress_request_metrics(self, **tags: Any) -> None:
        self.recorded.append(tags)


class Replica:
    def __init__(self) -> None:
        self._metrics_manager = Manager()
        self._deployment_id = type("D", (), {"app_name": "shop", "name": "Shop"})()


def test_the_lanes_adds_count_as_the_replicas_own_direct_ingress_requests() -> None:
    replica = Replica()
    counts = _LaneCounts(replica, ray_replica, "/api/shop/carts/{cart_id}/items")
    counts.started()
    counts.started()
    counts.ended()
    manager = replica._metrics_manager
    assert manager.ongoing == 1  # what Serve's autoscaler reads from this replica
    meta = manager.metas[0]
    # Ray counts a request in its ingress gauges only when both hold (_change_num_ongoing...).
    assert meta.is_direct_ingress and meta.protocol == ray_replica.RequestProtocol.HTTP
    counts.answered("POST", 201, 3.5)
    counts.answered("POST", 503, 0.1)
    assert manager.recorded == [
        {
            "protocol": ray_replica.RequestProtocol.HTTP,
            "method": "POST",
            "route": "/api/shop/carts/{cart_id}/items",
            "app_name": "shop",
            "deployment_name": "Shop",
            "latency_ms": latency,
            "is_error": status >= 500,
            "status_code": str(status),
        }
        for status, latency in ((201, 3.5), (503, 0.1))
    ]
