"""The last-resort error handler: a bug is a logged 500, a client that hung up is not a bug."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import ClientDisconnect

from matchday.web import errors
from tests.logs import messages_of


class TaskCancelledError(Exception):
    """Stands in for ray.exceptions.TaskCancelledError (matched by name, no Ray here)."""


def app_raising(exc: Exception) -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "exc",
    [ClientDisconnect(), TaskCancelledError("receive cancelled")],
    ids=["starlette", "ray-serve"],
)
def test_a_client_that_left_is_not_logged_as_a_bug(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=errors.__name__):
        r = app_raising(exc).get("/boom")
    assert r.status_code == 499 and r.json()["code"] == "client_closed_request"
    assert messages_of(caplog, errors.__name__) == []


def test_a_disconnect_wrapped_in_a_group_or_a_cause_is_still_a_client_that_left() -> None:
    try:
        raise RuntimeError("stream ended") from TaskCancelledError()
    except RuntimeError as exc:
        assert errors.client_left(exc)
    assert errors.client_left(ExceptionGroup("tasks", [ClientDisconnect()]))
    assert not errors.client_left(ValueError("a bug"))


def test_a_bug_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger=errors.__name__):
        r = app_raising(KeyError("oops")).get("/boom")
    assert r.status_code == 500 and r.json()["code"] == "internal"
    assert any("unhandled error on GET /boom" in m for m in messages_of(caplog, errors.__name__))


@pytest.mark.parametrize(
    "exc",
    [RedisConnectionError("No connection available."), RedisTimeoutError("Timeout reading")],
    ids=["pool-exhausted", "timeout"],
)
def test_redis_that_stops_answering_is_a_retryable_503_not_a_bug(exc: Exception) -> None:
    r = app_raising(exc).get("/boom")
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "unavailable" and r.json()["retryable"] is True
    assert r.headers["Retry-After"] == "1"


def test_a_redis_reply_error_is_still_a_bug() -> None:
    r = app_raising(RedisResponseError("WRONGTYPE Operation against a key")).get("/boom")
    assert r.status_code == 500
