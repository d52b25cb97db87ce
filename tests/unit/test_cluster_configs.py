"""The cluster configs parse and pass the validators their tools run (ADR 0012).

ray_cluster.yaml: Ray's own ``prepare_config`` + ``validate_config`` (what ``ray up`` runs,
against ``ray-schema.json``). The production Serve config and the RayService's embedded
``serveConfigV2``: Serve's ``ServeDeploySchema`` (what ``serve deploy`` and the dashboard's
REST API accept). No test here starts a cloud or a Kubernetes cluster.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "ray_cluster.yaml"
LAPTOP = ROOT / "serve_config.yaml"
PRODUCTION = ROOT / "cluster" / "serve_config.production.yaml"
RAYSERVICE = ROOT / "cluster" / "kuberay" / "rayservice.yaml"

# What a secret looks like if one were pasted into a config: Stripe keys, webhook secrets,
# URLs with a password, long hex or base64 runs.
SECRET_SHAPES = re.compile(
    r"(sk|rk)_(live|test)_\w+|whsec_\w+|://[^/\s:@]+:[^/\s@]+@|[0-9a-f]{32,}|[A-Za-z0-9+/]{40,}={0,2}"
)

HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rayservice_docs() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(RAYSERVICE.read_text()))


def rayservice() -> dict[str, Any]:
    (service,) = [d for d in rayservice_docs() if d["kind"] == "RayService"]
    return service


def apps(config: dict[str, Any]) -> dict[str, tuple[str, str, list[str]]]:
    return {
        a["name"]: (a["route_prefix"], a["import_path"], [d["name"] for d in a["deployments"]])
        for a in config["applications"]
    }


def test_the_launcher_config_passes_the_validation_ray_up_runs() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load(LAUNCHER)
    validate_config(prepare_config(config))  # raises on any unknown or mistyped field
    assert config["provider"]["type"] == "aws"
    worker = config["available_node_types"]["worker"]
    assert 1 <= worker["min_workers"] < worker["max_workers"] <= config["max_workers"]
    assert config["idle_timeout_minutes"] > 0


def test_the_launcher_keeps_the_dashboard_on_loopback_and_the_gcs_fault_tolerant() -> None:
    config = load(LAUNCHER)
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    assert "RAY_external_storage_namespace=" in head
    assert '--redis-password="$RAY_REDIS_PASSWORD"' in head  # from the env file, not inline
    assert "serve deploy cluster/serve_config.production.yaml" in head
    for commands in (head, " ".join(config["worker_start_ray_commands"])):
        assert "RAY_SERVE_ENABLE_HA_PROXY=1" in commands  # every node, ADR 0006
        # matchday's ingress limits and client addresses on every node (ADR 0020)
        assert f"{HOOK_ENV}=cluster.serve_hook.setup_worker" in commands
        assert "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S=60" in commands
        assert "RAY_SERVE_HAPROXY_METRICS_ENABLED=0" in commands  # ADR 0032


def test_the_production_serve_config_is_what_serve_deploy_accepts() -> None:
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema(**load(PRODUCTION))
    assert schema.proxy_location.value == "EveryNode"


def test_production_serves_the_laptops_apps_with_wider_autoscaling_bounds() -> None:
    laptop, production = load(LAPTOP), load(PRODUCTION)
    assert apps(production) == apps(laptop)
    bounds = {
        (a["name"], d["name"]): d.get("autoscaling_config")
        for a in laptop["applications"]
        for d in a["deployments"]
    }
    for app in production["applications"]:
        for deployment in app["deployments"]:
            small = bounds[(app["name"], deployment["name"])]
            big = deployment.get("autoscaling_config")
            if small and big:
                assert big["min_replicas"] >= small["min_replicas"]
                assert big["max_replicas"] >= small["max_replicas"]
            assert app["args"] == {}  # settings come from the environment, never args


def knobs_in_code() -> dict[str, dict[str, Any]]:
    """Each deployment's own options (serve/presets.py, through its decorator), by name."""
    import importlib

    from ray.serve import Deployment

    found: dict[str, dict[str, Any]] = {}
    for app in load(LAPTOP)["applications"]:
        module = importlib.import_module(app["import_path"].split(":")[0])
        for value in vars(module).values():
            if isinstance(value, Deployment):
                c = value._deployment_config
                scaling = c.autoscaling_config
                found[value.name] = {
                    "max_ongoing_requests": c.max_ongoing_requests,
                    "max_queued_requests": c.max_queued_requests,
                    "target_ongoing_requests": scaling and scaling.target_ongoing_requests,
                    "min_replicas": scaling and scaling.min_replicas,
                    "max_replicas": scaling and scaling.max_replicas,
                    "num_replicas": None if scaling else c.num_replicas,
                }
    return found


def knobs_in(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for app in config["applications"]:
        for d in app["deployments"]:
            scaling = d.get("autoscaling_config") or {}
            found[d["name"]] = {
                "max_ongoing_requests": d.get("max_ongoing_requests"),
                "max_queued_requests": d.get("max_queued_requests"),
                "target_ongoing_requests": scaling.get("target_ongoing_requests"),
                "min_replicas": scaling.get("min_replicas"),
                "max_replicas": scaling.get("max_replicas"),
                "num_replicas": d.get("num_replicas"),
            }
    return found


PER_REPLICA = ("max_ongoing_requests", "max_queued_requests", "target_ongoing_requests")


def test_the_deployment_numbers_agree_across_the_code_and_the_three_configs() -> None:
    """A replica's limits are one number everywhere (the code's presets, serve_config.yaml,
    the production config and the RayService that embeds it); only the replica counts
    differ, and the laptop's are the code's (issue 14: four places, nothing checked them)."""
    code, laptop, production = knobs_in_code(), knobs_in(load(LAPTOP)), knobs_in(load(PRODUCTION))
    assert set(code) == set(laptop) == set(production)
    for name, ours in code.items():
        stated = {k: v for k, v in laptop[name].items() if v is not None}
        assert stated == {k: v for k, v in ours.items() if k in stated}, name
        for knob in PER_REPLICA:
            assert production[name][knob] in (None, ours[knob]), (name, knob)


def test_each_deployments_numbers_are_its_preset_in_serve_presets() -> None:
    """The code's numbers have one home, serve/presets.py: each deployment takes the preset
    named after it, and nothing else sets a knob."""
    from serve import presets

    for name, ours in knobs_in_code().items():
        preset = getattr(presets, name.upper())
        scaling = preset.get("autoscaling_config") or {}
        assert ours == {
            "max_ongoing_requests": preset["max_ongoing_requests"],
            "max_queued_requests": preset["max_queued_requests"],
            "target_ongoing_requests": scaling.get("target_ongoing_requests"),
            "min_replicas": scaling.get("min_replicas"),
            "max_replicas": scaling.get("max_replicas"),
            "num_replicas": preset.get("num_replicas"),
        }, name


def test_the_rayservice_embeds_the_production_serve_config() -> None:
    from ray.serve.schema import ServeDeploySchema

    embedded = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    ServeDeploySchema(**embedded)
    assert embedded == load(PRODUCTION)


def test_the_rayservice_has_what_kuberay_needs() -> None:
    service = rayservice()
    assert service["apiVersion"] == "ray.io/v1"
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.60.0"
    head = cluster["headGroupSpec"]
    (worker,) = cluster["workerGroupSpecs"]
    assert 1 <= worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"]
    assert cluster["enableInTreeAutoscaling"] is True
    ft = cluster["gcsFaultToleranceOptions"]
    assert ft["redisAddress"]
    assert ft["redisPassword"]["valueFrom"]["secretKeyRef"]["name"] == "matchday-gcs-redis"
    assert cluster["authOptions"] == {"mode": "token", "secretName": "matchday-ray-auth"}
    for group in (head, worker):
        (container,) = group["template"]["spec"]["containers"]
        assert {"secretRef": {"name": "matchday-env"}} in container["envFrom"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
        assert env[HOOK_ENV] == "cluster.serve_hook.setup_worker"  # ADR 0020
        assert env["RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S"] == "60"
        assert env["RAY_SERVE_HAPROXY_METRICS_ENABLED"] == "0"  # ADR 0032
        assert env["MATCHDAY_TRUSTED_PROXIES"] and env["FORWARDED_ALLOW_IPS"]
        assert group["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "matchday"


def test_the_ingress_service_and_policies_keep_replicas_and_dashboard_private() -> None:
    docs = rayservice_docs()
    (svc,) = [d for d in docs if d["kind"] == "Service"]
    assert svc["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in svc["spec"]["ports"]] == [8000]
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    assert ingress["spec"]["tls"][0]["secretName"]
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies["matchday-default-deny"]
    assert deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    exposed: dict[int, list[dict[str, Any]]] = {}
    for spec in policies.values():
        for rule in spec.get("ingress", []):
            for port in rule.get("ports", []):
                exposed.setdefault(port["port"], []).extend(rule["from"])
    # From outside matchday's pods: the shop from the ingress controller, the dashboard from
    # the operator, metrics from Prometheus; nothing else.
    assert set(exposed) == {8000, 8265, 8080, 9101}
    (dashboard_from,) = exposed[8265]
    assert dashboard_from["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "kuberay-operator"
    }
    internal = policies["matchday-ray-internal"]["ingress"]
    assert internal == [
        {"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "matchday"}}}]}
    ]


@pytest.mark.parametrize("path", [LAUNCHER, PRODUCTION, RAYSERVICE], ids=lambda p: p.name)
def test_no_secret_value_is_written_in_a_cluster_config(path: Path) -> None:
    text = path.read_text()
    assert not SECRET_SHAPES.search(text), SECRET_SHAPES.search(text)
    for name in ("SECRET_KEY", "STRIPE_API_KEY", "DATABASE_URL", "REDIS_URL", "BACKUP_KEY"):
        assert not re.search(rf"MATCHDAY_{name}\s*[=:]\s*\S", text), name
    if path == RAYSERVICE:
        for doc in rayservice_docs():
            assert doc["kind"] != "Secret"  # created out of band (docs/ops/deploy.md)


# KubeRay's RayService CRD schema (v1), as the API server enforces it; source, version and
# license in tests/data/kuberay/README.md. There is no kubectl or API server here.
RAYSERVICE_SCHEMA = ROOT / "tests" / "data" / "kuberay" / "rayservices.v1.schema.json"


def strict(node: Any) -> Any:
    """The CRD schema as `kubectl apply` enforces it, in JSON Schema terms.

    kubectl's default field validation is Strict: a field the schema does not name is an
    error unless the node preserves unknown fields. JSON Schema allows unknown properties by
    default, so every object that lists its properties gets ``additionalProperties: false``.
    CEL rules (x-kubernetes-validations) are not evaluated; the one in this CRD checks
    managedBy, which the manifest does not set.
    """
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def rayservice_errors(service: dict[str, Any]) -> list[str]:
    import json

    from jsonschema import Draft7Validator

    validator = Draft7Validator(strict(json.loads(RAYSERVICE_SCHEMA.read_text())))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(service)
    ]


def test_the_rayservice_passes_kuberays_crd_schema() -> None:
    assert rayservice_errors(rayservice()) == []


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        # A misspelt field, the kind the API server refuses under strict field validation.
        (("spec", "rayClusterConfig", "gcsFaultToleranceOption"), {}, "Additional properties"),
        (("spec", "rayClusterConfig", "authOptions", "mode"), "tokens", "is not one of"),
        (("spec", "rayClusterConfig", "workerGroupSpecs", 0, "maxReplicas"), "10", "not of type"),
        (
            ("spec", "rayClusterConfig", "headGroupSpec", "template", "spec", "containers"),
            None,
            "None is not of type",
        ),
    ],
    ids=["unknown-field", "bad-enum", "string-for-int", "null-containers"],
)
def test_the_crd_schema_refuses_a_broken_rayservice(
    path: tuple[Any, ...], value: Any, complaint: str
) -> None:
    service = rayservice()
    node: Any = service
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = rayservice_errors(service)
    assert errors and any(complaint in e for e in errors), errors


def test_the_crd_schema_needs_what_kuberay_requires() -> None:
    service = rayservice()
    del service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0][
        "name"
    ]
    assert any("'name' is a required property" in e for e in rayservice_errors(service))


def test_the_haproxy_ingress_leaves_request_metrics_to_the_replicas_unless_told() -> None:
    from cluster.serving import HAPROXY_METRICS, ingress_env

    assert ingress_env("haproxy", {})[HAPROXY_METRICS] == "0"  # ADR 0032
    assert ingress_env("haproxy", {HAPROXY_METRICS: "1"})[HAPROXY_METRICS] == "1"
    assert HAPROXY_METRICS not in ingress_env("python", {})
