"""What a benchmark run measured: the commit, and the files that differ from it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any


def git_state() -> dict[str, Any]:
    """The commit measured, and the product files that differ from it (measured as they are)."""
    git = shutil.which("git")
    repo = Path(__file__).resolve().parent.parent
    if git is None:
        return {}
    try:

        def run(*args: str) -> str:
            return subprocess.run(  # noqa: S603 - git with fixed arguments
                [git, "-C", str(repo), *args], capture_output=True, text=True, timeout=10
            ).stdout.rstrip("\n")

        changed = run("status", "--porcelain", "--", "matchday", "actors", "cluster", "serve")
        return {"commit": run("rev-parse", "HEAD"), "changed": changed.splitlines()}
    except (OSError, subprocess.SubprocessError):
        return {}
