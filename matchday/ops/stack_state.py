"""Where a running ``matchday run`` says it is: ``<data_dir>/stack.json``.

Written by the launcher (cluster/local.py) when the stack is up and removed when it stops;
read by every command, tool and load test that attaches to a running stack.
"""

from __future__ import annotations

import json
from typing import Any

from matchday.settings import Settings

STATE_FILE = "stack.json"


def load_state(settings: Settings) -> dict[str, Any] | None:
    path = settings.data_dir / STATE_FILE
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    return state
