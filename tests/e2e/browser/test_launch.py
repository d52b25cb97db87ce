"""The browser's installation and launch recipe, without the Serve stack."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import cluster.browser
from cluster.browser import CHROMIUM, missing_reason

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[3]


def test_a_missing_chromium_is_named_with_its_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster.browser, "CHROMIUM", Path("/nonexistent/chromium"))
    reason = missing_reason()
    assert reason and "/nonexistent/chromium" in reason and "ensure-chromium" in reason


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")
def test_ensure_chromium_does_nothing_when_the_browser_is_there() -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "ensure-chromium")], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == done.stderr == ""  # no apt-get run, nothing to say
    assert missing_reason() is None
