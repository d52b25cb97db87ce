"""An operator attaches to a `matchday run` stack with what it publishes, and nothing else.

Checked on the second start of tests/e2e/test_run_lifecycle.py (a start of its own cost the
suite ~30 s). The stack runs as a newcomer's does: Ray's token authentication on, Ray on
loopback (ADR 0004). Its token lives in a file of this test's own (RAY_AUTH_TOKEN_PATH) and HOME
points elsewhere, so Ray's default ~/.ray/auth_token cannot help: the operator's process
gets PATH, an empty HOME and `eval "$(matchday env)"`, then `ray.init(address="auto")` and
`ray status` must answer (issue 13, item 11).
"""

from __future__ import annotations

import secrets
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import uid
from tests.e2e.run_stack import ROOT

BIN = Path(sys.executable).parent
# Attaching used to hang; a bound turns a hang into a failure.
ATTACH_TIMEOUT_S = 180

DRIVER = """
import os, ray
ray.init(address="auto", namespace=os.environ["MATCHDAY_NAMESPACE"], log_to_driver=False)
shard = ray.get_actor("inventory-shard-0")
print("shard", ray.get(shard.stats.remote())["shard_id"], "healthy")
ray.shutdown()
"""


def operator(home: Path, script: str, attach_lines: str) -> subprocess.CompletedProcess[str]:
    """A shell with only PATH and HOME, which evals the attach lines and runs ``script``."""
    return subprocess.run(
        ["/bin/bash", "-c", f'eval "$ATTACH" && {script}'],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "ATTACH": attach_lines},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=ATTACH_TIMEOUT_S,
        check=False,
    )


def token_settings(scratch: Path) -> dict[str, str]:
    """Settings that turn Ray's token authentication on, with a token file of the test's own
    (not ~/.ray/auth_token) and a namespace of its own."""
    token = scratch / "ray-token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "MATCHDAY_NAMESPACE": uid("attach"),
    }


def attaches_with_only_the_printed_variables(scratch: Path, settings: dict[str, str]) -> None:
    """On a running stack of ``scratch`` started with ``token_settings``: what it printed and
    `matchday env` attach a fresh shell with only PATH and an empty HOME."""
    token = Path(settings["RAY_AUTH_TOKEN_PATH"])
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    printed = (scratch / "run.log").read_text()
    env_file = scratch / "data" / "ray.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f"source {env_file}" in printed and "RAY_ADDRESS=127.0.0.1:" in printed
    assert token.read_text() not in printed + env_file.read_text()

    shown = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "env"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home),
             "MATCHDAY_DATA_DIR": str(scratch / "data")},
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == env_file.read_text()

    driver = operator(home, f"{sys.executable} -c '{DRIVER}'", shown.stdout)
    assert driver.returncode == 0, driver.stderr[-3000:]
    assert "shard 0 healthy" in driver.stdout

    status = operator(home, f"{BIN / 'ray'} status", shown.stdout)
    assert status.returncode == 0, status.stderr[-3000:]
    assert "Node status" in status.stdout
