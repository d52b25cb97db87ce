"""Every error a client sees is JSON with a stable code: mapped here, in one place."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException

from matchday.domain.errors import MatchdayError, Overloaded, RateLimited, Unavailable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}

# The schema of every error body, declared in each app's OpenAPI document.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "retryable": {"type": "boolean"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def error_response(
    status: int, code: str, message: str, *, retryable: bool = False, **extra: Any
) -> JSONResponse:
    headers = {}
    retry_after = extra.pop("retry_after_s", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    body = {"code": code, "message": message, "retryable": retryable, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def matchday_error_response(exc: MatchdayError) -> JSONResponse:
    extra: dict[str, Any] = {}
    if isinstance(exc, RateLimited | Overloaded):
        extra["retry_after_s"] = exc.retry_after_s
    elif exc.http_status == 503:  # every 503 says when to come back (issue 13, item 4)
        extra["retry_after_s"] = 1
    return error_response(exc.http_status, exc.code, exc.message, retryable=exc.retryable, **extra)


def install(app: FastAPI) -> None:
    @app.exception_handler(MatchdayError)
    async def _shop_error(request: Request, exc: MatchdayError) -> JSONResponse:
        return matchday_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": _loc(e), "msg": _msg(e)} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"][1:] or first["loc"]) or "request"
        return error_response(422, "invalid_input", f"{where}: {first['msg']}", errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        response = error_response(exc.status_code, code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(request.method, request.url.path, exc)


def unexpected_error_response(method: str, path: str, exc: Exception) -> JSONResponse:
    """The answer to an exception nothing else mapped: what Starlette's ServerErrorMiddleware
    sends through :func:`install`'s handler, and what the lean add path sends itself."""
    if client_left(exc):
        # The client hung up (a closed tab ending a live stream): nobody reads the answer
        # and nothing is wrong, so it must not look like a bug in the logs.
        log.debug("client left %s %s: %s", method, path, exc)
        return error_response(499, "client_closed_request", "the client went away")
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        # Redis callers catch these and degrade; one that forgot must still tell the
        # shopper to retry (503), not report a bug. A Redis *reply* error stays a 500.
        log.warning("Redis unavailable on %s %s: %s", method, path, exc)
        return matchday_error_response(Unavailable("the shop's cache is not answering"))
    if _from_ray(exc):
        # A Ray call that failed (an actor died or restarts, a Serve handle refused): an
        # outage to retry, never a bug, and its text (a remote traceback with paths, pids
        # and actor ids) stays in the log.
        log.warning("Ray unavailable on %s %s: %r", method, path, exc)
        return matchday_error_response(Unavailable("a backend service is not answering"))
    # A bug, never an input problem. Answer 500 honestly (tests treat any 5xx other than
    # a retryable 503 as a failure) and keep the traceback for the operator.
    log.exception("unhandled error on %s %s", method, path, exc_info=exc)
    return error_response(500, "internal", "internal error; it has been logged")


def _loc(error: Any) -> list[str]:
    if error.get("type") == "json_invalid":
        return ["body"]  # FastAPI puts the parser's character offset here
    return [str(p) for p in error.get("loc", ())]


def _msg(error: Any) -> str:
    """Pydantic's message; for a body that is not JSON, what the parser objected to."""
    if error.get("type") == "json_invalid":
        return f"invalid JSON: {(error.get('ctx') or {}).get('error', 'not JSON')}"
    return str(error.get("msg", ""))


def _from_ray(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] == "ray"  # by name: no Ray in this package


# Raised into a handler that is still waiting when its client disconnects: Starlette's own,
# and Ray Serve's cancellation of the request's task (matched by name: no Ray in this package).
_CLIENT_LEFT = frozenset({"ClientDisconnect", "TaskCancelledError", "RequestCancelledError"})


def client_left(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the client went away, not that we failed."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if type(seen).__name__ in _CLIENT_LEFT:
            return True
        if isinstance(seen, BaseExceptionGroup) and seen.exceptions:
            seen = seen.exceptions[0]
        else:
            seen = seen.__cause__ or seen.__context__
    return False
