"""bench.http --set: a matchday setting for the benchmark's stack, for an A/B in one run."""

from __future__ import annotations

import pytest

from bench.http import parse


def test_settings_for_the_stack_are_matchday_settings_by_name() -> None:
    args = parse(["--set", "MATCHDAY_CLIENT_LINGER_MS=0", "--set", "MATCHDAY_MAX_BATCH=64"])
    assert args.setting == {"MATCHDAY_CLIENT_LINGER_MS": "0", "MATCHDAY_MAX_BATCH": "64"}
    assert parse([]).setting == {}


@pytest.mark.parametrize("bad", ["CLIENT_LINGER_MS=0", "MATCHDAY_CLIENT_LINGER_MS", "RAY_X=1"])
def test_anything_else_is_refused(bad: str) -> None:
    with pytest.raises(SystemExit):
        parse(["--set", bad])
