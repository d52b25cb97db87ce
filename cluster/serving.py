"""Deploy serve_config.yaml on the running Ray cluster, as ``serve deploy`` would.

``serve deploy`` goes through the dashboard's REST API; the run command and the tests talk to
the Serve controller directly with the same schema, so they work with the dashboard off.

Binds (ADR 0006). A single-machine stack keeps every listener on 127.0.0.1: Ray itself via
``actors.ray_env.keep_ray_on_loopback`` (ADR 0004), the ingress via ``http_options.host``, and
the listeners Ray 2.60 hard-codes to all interfaces via the worker setup hook
(``cluster.serve_hook``), which also gives the ingress matchday's limits, timeouts, JSON
errors and client-address rules (ADR 0020).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml

from cluster.ingress_rules import CLIENT_TIMEOUT_S, trusted_proxies
from cluster.serve_hook import TRUSTED_PROXIES_ENV

log = logging.getLogger(__name__)

SERVE_CONFIG = Path(__file__).resolve().parent.parent / "serve_config.yaml"
LOOPBACK = "127.0.0.1"
# Ray runs the function this names in every worker process it starts (cluster.serve_hook).
SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"
SETUP_HOOK = "cluster.serve_hook.setup_worker"
LOOPBACK_ENV = {SETUP_HOOK_ENV: SETUP_HOOK}
HAPROXY_METRICS = "RAY_SERVE_HAPROXY_METRICS_ENABLED"

# Serve's own knobs, as matchday runs it (ADR 0030); an operator's environment wins.
# The controller's loop every 0.1 s (Ray's default) burned 0.14 of an idle 9-app stack's
# 0.51 cores on 2 cores; every 0.5 s, 0.05, with the same start time. Autoscaling decisions
# (delays of seconds) and health checks (every 10 s) do not notice the difference.
SERVE_ENV = {"RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5"}


def serve_env_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Set :data:`SERVE_ENV` where the environment does not already say (before Ray starts:
    its processes inherit it, and Serve reads it at import)."""
    env = os.environ if environ is None else environ
    for name, value in SERVE_ENV.items():
        env.setdefault(name, value)


def ingress_env(ingress: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment Ray must start from for this ingress (Serve reads it at import).

    Client addresses (ADR 0020): the hop in front of the replicas is the only one trusted.
    In HAProxy mode HAProxy rewrites X-Forwarded-For to one address (``ingress_rules``) and
    the replicas' uvicorn trusts HAProxy, which is on loopback here (uvicorn's default
    ``FORWARDED_ALLOW_IPS``). In Python-proxy mode clients reach the proxy's uvicorn
    directly, so it trusts only ``MATCHDAY_TRUSTED_PROXIES``: by default nobody (an empty
    ``FORWARDED_ALLOW_IPS`` matches no address), instead of every loopback client.
    """
    env = os.environ if environ is None else environ
    trusted = trusted_proxies(env.get(TRUSTED_PROXIES_ENV, ""))  # refuses a typo at start
    if ingress == "python":
        return {**LOOPBACK_ENV, "FORWARDED_ALLOW_IPS": ",".join(trusted)}
    # HAProxy ingress: ~3x the Python proxy on add-to-cart over HTTP, 2 cores (ADR 0006,
    # bench/http.py); ~13x on a no-op deployment (DESIGN.md).
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        # Ray's own knob; its default holds a silent client for an hour (ingress_rules).
        "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S": str(CLIENT_TIMEOUT_S),
        # Each replica counts its own requests into Serve's HTTP metrics (same names), not
        # HAProxy's log line per request parsed by a Python actor: 17% of an add's CPU
        # (ADR 0032). An operator's explicit "1" is kept.
        HAPROXY_METRICS: env.get(HAPROXY_METRICS, "0"),
        **LOOPBACK_ENV,
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


def app_names(path: Path = SERVE_CONFIG) -> list[str]:
    """The apps serve_config.yaml deploys, in its order."""
    return [a["name"] for a in yaml.safe_load(path.read_text())["applications"]]


def chosen_apps(spec: str | None, path: Path = SERVE_CONFIG) -> list[str] | None:
    """``--apps catalog,shop``: those apps, checked against the config; None is all of them.

    A stack of a few apps starts in a fraction of the time (each app is a build task and a
    replica process of its own, ~3 s of CPU each): for working on one part of the shop, and
    for the tests that need only an ingress and an app or two.
    """
    if spec is None:
        return None
    known = app_names(path)
    chosen = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise ValueError(
            f"--apps: unknown app(s) {', '.join(unknown) or '(none given)'}; "
            f"the apps are {', '.join(known)}"
        )
    return [name for name in known if name in chosen]


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


# Serve's own blocking deploy gives up after a fixed 60 s (serve/_private/client.py), which a
# loaded 2-core machine passed: `matchday run` failed with "Serve application isn't running
# after 60s" while other stacks ran beside it (2026-12-02). A cold start of the seven apps
# takes 40-90 s there; this bounds a hang, not a slow start.
DEPLOY_TIMEOUT_S = 600.0


def deploy(
    config: dict[str, Any],
    *,
    say: Callable[[str], None] = print,
    timeout_s: float = DEPLOY_TIMEOUT_S,
) -> None:
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
    client = _get_global_client()
    assert client is not None, "serve.start() connects it"
    client.deploy_apps(schema, _blocking=False)
    wait_running(client, set(names), deadline=started + timeout_s)
    client.wait_for_proxies_serving(wait_for_applications_running=True)
    say(f"serving {len(names)} apps after {time.monotonic() - started:.1f} s")


def wait_running(client: Any, names: set[str], *, deadline: float) -> None:
    """Until every app in ``names`` is RUNNING; raise on DEPLOY_FAILED or at the deadline."""
    while True:
        status = {s.name: s.app_status for s in client.list_serve_statuses() if s.name in names}
        failed = {n: a.message for n, a in status.items() if a.status == "DEPLOY_FAILED"}
        if failed:
            raise RuntimeError(f"Serve could not deploy {failed}")
        if len(status) == len(names) and {a.status for a in status.values()} == {"RUNNING"}:
            return
        if time.monotonic() > deadline:
            waiting = sorted(
                n for n in names if status.get(n) is None or status[n].status != "RUNNING"
            )
            raise TimeoutError(f"Serve apps not running in time: {waiting}")
        time.sleep(1.0)


def shutdown() -> None:
    from ray import serve

    serve.shutdown()
