"""Errors never leak internals, and every 503 says when to retry (issue 13, item 4).

Ray's own wrappers are stood in for here (no Ray in unit tests); the real RayTaskError and
ActorDiedError go through the same handlers in tests/integration/test_pinning_on_ray.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from matchday.domain.errors import (
    MatchdayError,
    Overloaded,
    StaleEpoch,
    Unavailable,
    UnknownSku,
    WrongShard,
)
from matchday.web import errors
from tests.logs import messages_of
from tests.unit.test_web_errors import app_raising

TRACEBACK = (
    "\x1b[36mray::InventoryShard.adopt()\x1b[39m (pid=4242, ip=127.0.0.1, "
    'actor_id=9d18091b6ce3c99fbedd090801000000)\n  File "/srv/actors/inventory.py", line 9'
)


class RemoteError(Exception):
    """Stands in for ray.exceptions.RayTaskError: its text is the remote traceback."""

    def __str__(self) -> str:
        return TRACEBACK


def wrapped(cause: MatchdayError) -> MatchdayError:
    """What Ray re-raises for a remote ``cause``: an instance of both classes (its dual)."""

    class Dual(RemoteError, type(cause)):  # type: ignore[misc]
        def __init__(self, cause: MatchdayError) -> None:
            self.cause = cause
            self.args = (cause,)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.cause, name)

    return Dual(cause)


class ActorDiedError(Exception):
    """Stands in for ray.exceptions.ActorDiedError (the handler matches Ray by module)."""


ActorDiedError.__module__ = "ray.exceptions"


@pytest.mark.parametrize(
    "exc",
    [WrongShard("KIT-M", 2), StaleEpoch(1, 4, 5), Unavailable("storage away"), Overloaded(2.2)],
    ids=lambda e: type(e).__name__,
)
def test_every_503_carries_retry_after(exc: MatchdayError) -> None:
    r = app_raising(exc).get("/boom")
    assert r.status_code == 503 and r.json()["retryable"] is True
    assert int(r.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    "cause", [WrongShard("KIT-M", 2), UnknownSku("KIT-L"), Unavailable("shard restarting")]
)
def test_a_domain_error_wrapped_by_ray_answers_its_own_message_only(cause: MatchdayError) -> None:
    exc = wrapped(cause)
    assert isinstance(exc, type(cause)) and str(exc) == TRACEBACK
    assert exc.message == str(cause) and exc.to_dict() == cause.to_dict()
    r = app_raising(exc).get("/boom")
    assert r.status_code == cause.http_status
    assert r.json() == cause.to_dict()
    assert "pid" not in r.text and "\x1b" not in r.text and "File" not in r.text


def test_a_ray_failure_is_a_503_with_a_fixed_message_and_the_detail_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=errors.__name__):
        r = app_raising(ActorDiedError(TRACEBACK)).get("/boom")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json() == {
        "code": "unavailable",
        "message": "a backend service is not answering",
        "retryable": True,
    }
    logged = messages_of(caplog, errors.__name__)
    assert len(logged) == 1 and "actor_id=9d18091b" in logged[0]  # the operator still sees it
