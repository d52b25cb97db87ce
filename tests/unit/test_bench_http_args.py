"""bench.http --set: a matchday setting for the benchmark's stack, for an A/B in one run; or
--attach: a running stack instead (how it is found: tests/unit/test_bench_attach.py)."""

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


def test_attach_takes_the_running_stacks_ingress_and_refuses_what_only_a_own_stack_can_do() -> None:
    assert parse([]).ingress == ["haproxy", "python"]
    assert parse(["--attach"]).ingress is None  # the attached stack's, found in main
    assert parse(["--attach", "--stack-pid", "42"]).stack_pid == 42
    for bad in (["--attach", "--set", "MATCHDAY_MAX_BATCH=64"], ["--stack-pid", "42"]):
        with pytest.raises(SystemExit):
            parse(bad)
