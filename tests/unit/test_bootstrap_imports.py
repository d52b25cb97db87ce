"""The composition root loads a module on the first use of one of its names: a shard and the
event publisher start without the apps' modules (FastAPI, the gateways, the supplier
services), which cost each of them ~1.2 s of CPU at start; every exported name still
resolves (matchday/bootstrap/__init__.py, engine.py). Serve's build task of an app imports
no HTTP layer either (serve/__init__.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from matchday import bootstrap

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("fastapi", "stripe", "httpx", "matchday.bootstrap.contexts", "matchday.web")


def in_fresh_interpreter(probe: str) -> object:
    """What ``probe`` prints last, as JSON, run in a new interpreter (this one has imported
    everything already)."""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_shard_and_the_publisher_start_without_the_apps_modules() -> None:
    probe = (
        "import json, sys, actors.inventory, actors.publisher\n"
        "from matchday import bootstrap\n"
        "bootstrap.open_shard_core, bootstrap.open_publisher\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    assert in_fresh_interpreter(probe) == []


def test_a_restarted_shard_imports_no_redis_client_and_no_relay() -> None:
    """They are the publisher's; a shard killed mid-match comes back ~0.3 s sooner without
    them (issue 12: recovery after ray.kill, target under 2 s)."""
    probe = (
        "import json, sys, actors.inventory\n"
        "from matchday import bootstrap\n"
        "bootstrap.open_shard_core\n"
        "print(json.dumps([m for m in ('redis', 'matchday.events.relay') if m in sys.modules]))\n"
    )
    assert in_fresh_interpreter(probe) == []


def test_every_exported_name_resolves_and_an_unknown_one_is_an_attribute_error() -> None:
    for name in bootstrap.__all__:
        assert getattr(bootstrap, name) is not None, name
    assert bootstrap.open_shard_core.__module__ == "matchday.bootstrap.engine"
    with pytest.raises(AttributeError, match="no attribute 'open_everything'"):
        bootstrap.open_everything  # noqa: B018


def test_building_every_served_app_imports_no_http_layer() -> None:
    """What Serve's build task does for each app of serve_config.yaml, in a process of its
    own: import the module, call its builder. The replica imports ``matchday.web`` when it
    builds the FastAPI app; the build task has no use for it (serve/__init__.py)."""
    probe = (
        "import importlib, json, sys, yaml\n"
        f"config = yaml.safe_load(open({str(ROOT / 'serve_config.yaml')!r}))\n"
        "for app in config['applications']:\n"
        "    module, builder = app['import_path'].split(':')\n"
        "    getattr(importlib.import_module(module), builder)(app.get('args') or {})\n"
        "print(json.dumps([m for m in ('matchday.web', 'matchday.bootstrap.contexts', 'stripe')"
        " if m in sys.modules]))\n"
    )
    assert in_fresh_interpreter(probe) == []
