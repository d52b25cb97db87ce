"""Every long-lived actor is started with the same options (actors/detached.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from actors.detached import POLICY, detached_options
from matchday.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_an_actor_is_named_in_the_namespace_detached_and_restarted_forever() -> None:
    options = detached_options("payments-worker", Settings(namespace="shop-a"))
    assert options == {
        "name": "payments-worker",
        "namespace": "shop-a",
        "lifetime": "detached",
        "get_if_exists": True,
        "max_restarts": -1,
        "max_task_retries": -1,
        "num_cpus": 0,
    }


def test_a_caller_adds_options_but_never_changes_the_policy() -> None:
    options = detached_options("inventory-shard-0", Settings(), max_concurrency=10_000)
    assert options["max_concurrency"] == 10_000
    for key in [*POLICY, "name", "namespace"]:
        with pytest.raises(ValueError, match=key):
            detached_options("inventory-shard-0", Settings(), **{key: 1})


def test_no_actor_is_made_detached_anywhere_else() -> None:
    """``lifetime="detached"`` is written once: a new long-lived actor goes through the
    factory, or this test names the module that did not."""
    elsewhere = []
    for folder in ("actors", "serve", "cluster", "bench", "loadtests"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.keyword) and node.arg == "lifetime":
                    elsewhere.append(str(path.relative_to(ROOT)))
    assert elsewhere == []
