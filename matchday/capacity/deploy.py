"""The plan as deployable configuration: a Serve config and a RayService merge patch.

Both start from the checked-in production files (``cluster/serve_config.production.yaml``,
``cluster/kuberay/rayservice.yaml``) as plain dicts, and change only what the plan decides:
autoscaling bounds and targets of the deployments the scenario loads, the worker group's
size and pod resources, and the shard counts. Everything else (routes, load shedding, the
operator's HA floor of min_replicas) stays as the files say.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from matchday.capacity.classes import replica_role
from matchday.capacity.plan_model import Plan

# KubeRay's RayService: `kubectl patch --type merge` replaces lists whole, so the patch
# carries each container list it changes in full.
WORKER_GROUP = 0


def serve_config(base: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """``base`` (a Serve config) with the plan's replicas and targets."""
    config = copy.deepcopy(base)
    by_role = {d.role: d for d in plan.deployments}
    for app in config.get("applications", []):
        for dep in app.get("deployments", []):
            d = by_role.get(replica_role(app["name"], dep["name"]))
            if d is None:
                continue  # no load from this scenario: as configured
            auto = dep.get("autoscaling_config")
            if auto is None:
                dep["num_replicas"] = max(int(dep.get("num_replicas", 1)), d.replicas_at_peak)
                continue
            auto["min_replicas"] = max(int(auto.get("min_replicas", 1)), d.min_replicas)
            auto["max_replicas"] = max(auto["min_replicas"], d.max_replicas)
            auto["target_ongoing_requests"] = d.target_ongoing
            ongoing = int(dep.get("max_ongoing_requests", 0))
            dep["max_ongoing_requests"] = max(ongoing, d.max_ongoing)
    return config


def _quantity_cpu(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{math.floor(cores * 1000)}m"


def _quantity_memory(gib: float) -> str:
    return f"{int(gib)}Gi" if float(gib).is_integer() else f"{math.floor(gib * 1024)}Mi"


def _with_env(container: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    out = copy.deepcopy(container)
    kept = [e for e in out.get("env", []) if e.get("name") not in env]
    out["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
    return out


def shard_env(plan: Plan) -> dict[str, str]:
    """What every Ray node needs to route SKUs like the shards the head starts."""
    return {
        "MATCHDAY_SHARDS": str(plan.shards.ring),
        "MATCHDAY_DEDICATED_SHARDS": str(plan.shards.dedicated),
    }


def rayservice_patch(service: dict[str, Any], serve_config_text: str, plan: Plan) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) for the RayService ``service``, carrying the plan."""
    cluster = service["spec"]["rayClusterConfig"]
    env = shard_env(plan)
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    workers = copy.deepcopy(cluster["workerGroupSpecs"])
    group = workers[WORKER_GROUP]
    group["replicas"] = plan.nodes.at_peak
    group["minReplicas"] = plan.nodes.min
    group["maxReplicas"] = plan.nodes.max
    node = plan.options.node
    resources = {"cpu": _quantity_cpu(node.cores), "memory": _quantity_memory(node.memory_gib)}
    containers = []
    for c in group["template"]["spec"]["containers"]:
        c = _with_env(c, env)
        c["resources"] = {"requests": dict(resources), "limits": dict(resources)}
        containers.append(c)
    group["template"]["spec"]["containers"] = containers
    return {
        "spec": {
            "serveConfigV2": serve_config_text,
            "rayClusterConfig": {
                "headGroupSpec": {
                    "template": {"spec": {"containers": [_with_env(c, env) for c in head]}}
                },
                "workerGroupSpecs": workers,
            },
        }
    }
