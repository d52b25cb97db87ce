"""Deploy serve_config.yaml on the running Ray cluster, as ``serve deploy`` would.

``serve deploy`` goes through the dashboard's REST API; the run command and the tests talk to
the Serve controller directly with the same schema, so they work with the dashboard off.

Binds (ADR 0006). A single-machine stack keeps every listener on 127.0.0.1: Ray itself via
``cluster.local.keep_ray_on_loopback`` (ADR 0004), the ingress via ``http_options.host``, and
two listeners Ray 2.60 hard-codes to all interfaces via :func:`keep_serve_on_loopback`, a
worker setup hook: each Serve replica's inter-deployment gRPC server (``[::]:0`` in
``replica.py``, both ingress modes) and HAProxy's stats (``*:8404``) and Prometheus
(``:9101``) frontends (``haproxy_templates.py``). The hook changes them only on a node whose
Ray address is 127.0.0.1, so a multi-node cluster keeps Ray's defaults. On every node the
hook also adds ``option forwardfor`` to HAProxy, so replicas see each shopper's address.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

log = logging.getLogger(__name__)

SERVE_CONFIG = Path(__file__).resolve().parent.parent / "serve_config.yaml"
LOOPBACK = "127.0.0.1"
# Ray runs the function this names in every worker process it starts, before the worker
# hosts anything: the variable behind ``ray.init(runtime_env={"worker_process_setup_hook":
# ...})`` (ray/_private/runtime_env/setup_hook.py). Set in the environment Ray starts from
# (INGRESS_ENV) it reaches Serve's own actors (the HAProxy manager); set in an app's
# runtime_env (load_config) it reaches that app's replicas, also on a cluster started
# elsewhere (the test suite's).
SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"
SETUP_HOOK = "cluster.serving.keep_serve_on_loopback"
LOOPBACK_ENV = {SETUP_HOOK_ENV: SETUP_HOOK}
INGRESS_ENV = {
    # HAProxy ingress: ~3x the Python proxy on add-to-cart over HTTP, 2 cores (ADR 0006,
    # bench/http.py); ~13x on a no-op deployment (DESIGN.md).
    "haproxy": {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        **LOOPBACK_ENV,
    },
    "python": {**LOOPBACK_ENV},
}


def haproxy_folder(data_dir: Path) -> Path:
    tag = hashlib.blake2b(str(data_dir.resolve()).encode(), digest_size=4).hexdigest()
    return Path(tempfile.gettempdir()) / f"mdh-{tag}"


def haproxy_files(data_dir: Path) -> dict[str, str]:
    """HAProxy's config, admin socket and state files in this stack's own 0700 directory.

    Ray's defaults are shared paths under /tmp/haproxy-serve with a world-writable admin
    socket: two stacks on one machine (a run and the test suite, say) would fight over
    them, and any local user could drive the ingress. The directory is short and under
    /tmp, not in the data directory: Ray nests a 56-character folder in it and a Unix
    socket's path must stay under HAProxy's 97 bytes.
    """
    folder = haproxy_folder(data_dir)
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid():
        raise RuntimeError(f"{folder} belongs to another user: refusing to use it")
    folder.chmod(0o700)
    return {
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
    }


# What Ray 2.60 writes, and what a loopback-only node writes instead.
_REPLICA_GRPC_ADDRESS = "[::]:0"
_HAPROXY_BINDS = {
    "bind :{{ config.metrics_port }}": "bind 127.0.0.1:{{ config.metrics_port }}",
    "bind *:{{ config.stats_port }}": "bind 127.0.0.1:{{ config.stats_port }}",
}


def _on_loopback_node() -> bool:
    import ray

    try:
        return bool(ray.util.get_node_ip_address() == LOOPBACK)  # type: ignore[no-untyped-call]
    except Exception:  # not connected yet: decide at the first call instead
        return False


def _patch_replica(module: ModuleType) -> None:
    original = getattr(module, "add_port_to_grpc_server")  # noqa: B009 - private to Ray

    def add_port(server: Any, address: str) -> int:
        if address == _REPLICA_GRPC_ADDRESS and _on_loopback_node():
            address = f"{LOOPBACK}:0"  # the controller reaches it at the node IP, 127.0.0.1
        return int(original(server, address))

    setattr(module, "add_port_to_grpc_server", add_port)  # noqa: B010


# Without it every replica sees HAProxy's address as the client: per-IP rate limits and the
# fraud rules' per-IP velocity would lump all shoppers together, and a client could name any
# address in its own X-Forwarded-For (uvicorn trusts loopback peers). HAProxy appends the
# real peer; uvicorn takes the rightmost untrusted entry (FORWARDED_ALLOW_IPS).
_HAPROXY_DEFAULTS = "    option httplog\n"
_FORWARDFOR = "    option forwardfor\n"


def _patch_haproxy(module: ModuleType) -> None:
    template: str = getattr(module, "HAPROXY_CONFIG_TEMPLATE")  # noqa: B009
    missing = [old for old in (*_HAPROXY_BINDS, _HAPROXY_DEFAULTS) if old not in template]
    if missing:
        log.warning("HAProxy template changed, cannot apply %s", missing)
    if _FORWARDFOR not in template:
        template = template.replace(_HAPROXY_DEFAULTS, _HAPROXY_DEFAULTS + _FORWARDFOR, 1)
        setattr(module, "HAPROXY_CONFIG_TEMPLATE", template)  # noqa: B010
    if not _on_loopback_node():
        return
    for old, new in _HAPROXY_BINDS.items():
        template = template.replace(old, new)
    setattr(module, "HAPROXY_CONFIG_TEMPLATE", template)  # noqa: B010


_PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "ray.serve._private.replica": _patch_replica,
    "ray.serve._private.haproxy": _patch_haproxy,
}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies a patch right after its module is imported, so workers that never import
    Serve (the inventory shards) pay nothing."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def keep_serve_on_loopback() -> None:
    """Worker setup hook: bind Serve's hard-coded all-interface listeners to 127.0.0.1 on a
    loopback-only node. Safe to call more than once."""
    for name, patch in _PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def load_config(
    path: Path = SERVE_CONFIG,
    *,
    settings: dict[str, Any] | None = None,
    host: str | None = None,
    port: int | None = None,
    apps: list[str] | None = None,
    tls_certfile: str | None = None,
    tls_keyfile: str | None = None,
) -> dict[str, Any]:
    """serve_config.yaml, with settings overrides put into every app's args.

    ``tls_certfile``/``tls_keyfile`` (PEM paths, both or neither) become Serve's
    ``http_options.ssl_certfile``/``ssl_keyfile``: the ingress then speaks HTTPS only.
    """
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config = copy.deepcopy(config)
    if host is not None:
        config.setdefault("http_options", {})["host"] = host
    if port is not None:
        config.setdefault("http_options", {})["port"] = port
    if bool(tls_certfile) != bool(tls_keyfile):
        raise ValueError("TLS needs both a certificate file and a key file")
    if tls_certfile and tls_keyfile:
        http_options = config.setdefault("http_options", {})
        http_options["ssl_certfile"] = str(tls_certfile)
        http_options["ssl_keyfile"] = str(tls_keyfile)
    if apps is not None:
        config["applications"] = [a for a in config["applications"] if a["name"] in apps]
    loopback = config.get("http_options", {}).get("host", LOOPBACK) in (LOOPBACK, "localhost")
    for app in config["applications"]:
        args = app.setdefault("args", {}) or {}
        app["args"] = args
        if settings:
            args["settings"] = {**args.get("settings", {}), **settings}
        if loopback:  # a single machine: its replicas run the loopback hook (module doc)
            runtime_env = app.setdefault("runtime_env", {}) or {}
            runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **LOOPBACK_ENV}
            app["runtime_env"] = runtime_env
    return config


# Serve's HTTPOptions fields that take effect only at serve.start (ray/serve/config.py).
_SSL_OPTIONS = ("ssl_certfile", "ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs")


def refuse_tls_with_haproxy(config: dict[str, Any], env: Mapping[str, str] | None = None) -> None:
    """Serve 2.60 terminates TLS only in its Python proxy (uvicorn, ``http_util.py``).

    In HAProxy mode the frontend template has no ``ssl`` bind, so the ingress would answer
    plain HTTP, while each replica's direct-ingress uvicorn would get the certificate and
    speak TLS to an HAProxy that talks plain HTTP to it. Refuse instead of half-working:
    with HAProxy, TLS ends at a front proxy (ADR 0012).
    """
    environ = os.environ if env is None else env
    http = config.get("http_options", {})
    if environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1" and http.get("ssl_certfile"):
        raise ValueError(
            "TLS on the Serve ingress needs the Python proxy (MATCHDAY_INGRESS=python); "
            "with HAProxy terminate TLS in a front proxy (docs/adr/0012-cluster-and-tls.md)"
        )


def deploy(config: dict[str, Any], *, say: Callable[[str], None] = print) -> None:
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    refuse_tls_with_haproxy(config)
    http = config.get("http_options", {})
    serve.start(
        http_options={
            "host": http.get("host", LOOPBACK),
            "port": http.get("port", 8000),
            **{k: http[k] for k in _SSL_OPTIONS if http.get(k)},
        },
        proxy_location=config.get("proxy_location", "HeadOnly"),
    )
    schema = ServeDeploySchema(**config)
    names = [a.name for a in schema.applications]
    say(f"deploying {', '.join(names)} ...")
    started = time.monotonic()
    _get_global_client().deploy_apps(schema, _blocking=True)
    say(f"serving {len(names)} apps after {time.monotonic() - started:.1f} s")


def shutdown() -> None:
    from ray import serve

    serve.shutdown()
