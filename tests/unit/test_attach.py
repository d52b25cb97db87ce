"""`matchday env`: the attach file says where Ray is and where its token lives, privately.

Pure file handling here; tests/e2e/attach_checks.py (on the lifecycle test's stack) attaches
a fresh process to a real `matchday run` stack with nothing but these variables.
"""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from cluster import attach
from matchday.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", namespace="ops-ns")


def test_the_token_is_found_where_ray_looks_and_never_copied_unless_given_as_a_value(
    tmp_path: Path,
) -> None:
    tmp_path.mkdir(exist_ok=True)
    assert attach.token_path(tmp_path, {"RAY_AUTH_MODE": "disabled"}) is None
    assert attach.token_path(tmp_path, {}) == Path.home() / ".ray" / "auth_token"
    named = tmp_path / "tok"
    assert attach.token_path(tmp_path, {"RAY_AUTH_TOKEN_PATH": str(named)}) == named
    copied = attach.token_path(tmp_path, {"RAY_AUTH_TOKEN": "ab" * 32, "RAY_AUTH_MODE": "token"})
    assert copied == tmp_path / attach.TOKEN_FILE
    assert copied.read_text() == "ab" * 32 + "\n" and mode(copied) == 0o600


def test_publish_writes_a_private_file_that_load_and_the_script_agree_on(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("cd" * 32)
    token.chmod(0o644)  # as Ray leaves its default token file under umask 022
    settings.data_dir.mkdir()
    stale = settings.data_dir / attach.ENV_FILE
    stale.write_text("old")
    stale.chmod(0o644)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)

    path, published = attach.publish(settings, "127.0.0.1:6553")
    assert path == stale and mode(path) == 0o600 and mode(token) == 0o600
    assert published.env() == {
        "RAY_ADDRESS": "127.0.0.1:6553",
        "MATCHDAY_NAMESPACE": "ops-ns",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    text = path.read_text()
    assert "cd" * 32 not in text  # the token stays in its own file
    assert f"export RAY_AUTH_TOKEN_PATH={token}\n" in text
    assert attach.load(settings) == published

    inline = published.script(inline_token=True)
    assert f"export RAY_AUTH_TOKEN={'cd' * 32}\n" in inline and "TOKEN_PATH" not in inline

    attach.forget(settings)
    assert not path.exists()
    with pytest.raises(SystemExit, match="matchday run"):
        attach.load(settings)


def test_a_cluster_without_token_auth_says_so_and_a_multinode_one_keeps_its_node_address(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.data_dir.mkdir()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    _, published = attach.publish(settings, "10.0.0.5:6379")
    assert published.env() == {
        "RAY_ADDRESS": "10.0.0.5:6379",
        "MATCHDAY_NAMESPACE": "ops-ns",
        "RAY_AUTH_MODE": "disabled",
    }


def test_matchday_env_without_a_running_stack_says_so(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert attach.cmd_env(argparse.Namespace(inline_token=False), settings) == 1
    assert "matchday run" in capsys.readouterr().err
