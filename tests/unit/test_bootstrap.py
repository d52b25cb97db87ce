"""bootstrap.open_shop refuses a missing secret key before it opens anything: an opened pool
that is never closed kept the process from exiting."""

from __future__ import annotations

from typing import Any

import pytest

from matchday import bootstrap
from matchday.settings import Settings


async def test_a_missing_secret_key_is_refused_before_any_pool_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[Any] = []
    monkeypatch.setattr(bootstrap, "make_pool", lambda *a, **k: opened.append(a))
    with pytest.raises(ValueError, match="secret_key"):
        await bootstrap.open_shop(Settings(secret_key=""))
    assert opened == []
