"""``--attach``: the benchmarks find a running ``matchday run`` as its commands do, from
MATCHDAY_* and ``<data_dir>/stack.json``, and refuse a stack that lacks what they measure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.http_stack import Attached, AttachError
from matchday.settings import Settings

STATE = {
    "pid": 4242, "database_url": "postgresql://db", "redis_url": "redis://r", "shards": 3,
    "dedicated_shards": 1, "http_port": 8123, "ingress": "haproxy", "apps": ["shop", "orders"],
}  # fmt: skip


def running(data_dir: Path, **state: object) -> Path:
    """What `matchday run` leaves in its data directory while it runs."""
    (data_dir / "stack.json").write_text(json.dumps({**STATE, **state}))
    (data_dir / "secret_key").write_text("k" * 64 + "\n")
    return data_dir


def test_the_running_stack_is_where_its_stack_json_says(tmp_path: Path) -> None:
    stack = Attached(Settings(data_dir=running(tmp_path)))
    assert (stack.base, stack.pid(), stack.ingress) == ("http://127.0.0.1:8123", 4242, "haproxy")
    s = stack.settings
    assert (s.database_url, s.redis_url, s.shards, s.dedicated_shards) == (
        "postgresql://db", "redis://r", 3, 1,
    )  # fmt: skip
    # The key the run generated: shoppers' tokens signed with it are the stack's.
    assert s.secret_key.get_secret_value() == "k" * 64


def test_the_environment_and_stack_pid_come_first(tmp_path: Path) -> None:
    settings = Settings(data_dir=running(tmp_path), database_url="postgresql://mine",
                        secret_key="s" * 48)  # fmt: skip
    stack = Attached(settings, stack_pid=7)
    assert stack.pid() == 7
    assert stack.settings.database_url == "postgresql://mine"
    assert stack.settings.secret_key.get_secret_value() == "s" * 48


def test_no_running_stack_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(AttachError, match="start `matchday run`"):
        Attached(Settings(data_dir=tmp_path))


def test_a_stack_without_the_apps_or_with_another_ingress_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "HTTP_PORT", "INGRESS"):
        monkeypatch.delenv(f"MATCHDAY_{name}", raising=False)
    monkeypatch.setenv("MATCHDAY_DATA_DIR", str(running(tmp_path)))
    assert Attached.find(None, ["shop"], ["haproxy"]).ingress == "haproxy"
    with pytest.raises(AttachError, match=r"not \['polls'\]"):
        Attached.find(None, ["shop", "polls"])
    with pytest.raises(AttachError, match="ingress is haproxy"):
        Attached.find(None, ["shop"], ["python"])
