"""Deploy serve_config.yaml on the running Ray cluster, as ``serve deploy`` would.

``serve deploy`` goes through the dashboard's REST API; the run command and the tests talk to
the Serve controller directly with the same schema, so they work with the dashboard off.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

SERVE_CONFIG = Path(__file__).resolve().parent.parent / "serve_config.yaml"
INGRESS_ENV = {
    # HAProxy ingress: measured ~13x the default Python proxy on 2 cores (ADR 0006).
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "python": {},
}


def load_config(
    path: Path = SERVE_CONFIG,
    *,
    settings: dict[str, Any] | None = None,
    host: str | None = None,
    port: int | None = None,
    apps: list[str] | None = None,
) -> dict[str, Any]:
    """serve_config.yaml, with settings overrides put into every app's args."""
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config = copy.deepcopy(config)
    if host is not None:
        config.setdefault("http_options", {})["host"] = host
    if port is not None:
        config.setdefault("http_options", {})["port"] = port
    if apps is not None:
        config["applications"] = [a for a in config["applications"] if a["name"] in apps]
    for app in config["applications"]:
        args = app.setdefault("args", {}) or {}
        app["args"] = args
        if settings:
            args["settings"] = {**args.get("settings", {}), **settings}
    return config


def deploy(config: dict[str, Any], *, say: Callable[[str], None] = print) -> None:
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    http = config.get("http_options", {})
    serve.start(
        http_options={"host": http.get("host", "127.0.0.1"), "port": http.get("port", 8000)},
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
