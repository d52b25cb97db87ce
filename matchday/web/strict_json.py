"""JSON request bodies parsed without guessing: one meaning per body, or a 422 naming why.

Python's ``json.loads`` on bytes accepts UTF-16 and UTF-32 (it sniffs the encoding), skips a
UTF-8 byte-order mark, keeps the *last* of duplicate keys (``{"qty": 1, "qty": 100}`` held
100 units), and reads ``NaN``/``Infinity``. Another parser (a proxy, a WAF, an audit tool)
may read the same bytes differently, so every app refuses them: UTF-8 only, no BOM, no NUL,
no duplicate keys, no non-finite numbers, no integer longer than 30 digits. Types are the
models' job: money and stock fields are strict (``true``, ``"1"`` and ``1.0`` are not 1).

``StrictJSONRoute`` makes FastAPI parse every JSON body with :func:`loads`; the lean
add-to-cart route (``fast_add.py``) calls the same function.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

MAX_INT_DIGITS = 30
_BOM = codecs.BOM_UTF8


class AmbiguousJSON(json.JSONDecodeError):
    """Raised for a body Python would read but matchday refuses; FastAPI answers 422."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise AmbiguousJSON(f"duplicate key {_show(key)}", "", 0)
            seen.add(key)
    return found


def _no_constant(name: str) -> Any:
    raise AmbiguousJSON(f"{name} is not a JSON number", "", 0)


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise AmbiguousJSON(f"an integer longer than {MAX_INT_DIGITS} digits", "", 0)
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise AmbiguousJSON("a number too large for a float", "", 0)
    return value


def _show(key: str) -> str:
    return repr(key if len(key) <= 40 else key[:40] + "...")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_constant=_no_constant,
    parse_int=_bounded_int,
    parse_float=_finite_float,
)


def loads(body: bytes) -> Any:
    """The one value ``body`` means, or :class:`json.JSONDecodeError` saying what is wrong."""
    if body.startswith(_BOM):
        raise AmbiguousJSON("a byte-order mark before the JSON: send plain UTF-8", "", 0)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = "the body is not UTF-8 (UTF-16 and others are refused)"
        raise AmbiguousJSON(message, "", exc.start) from None
    if "\x00" in text:
        raise AmbiguousJSON("a NUL byte: the body must be UTF-8 JSON (not UTF-16)", "", 0)
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise AmbiguousJSON("nested too deeply", "", 0) from None


class StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A FastAPI route whose JSON body goes through :func:`loads`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictRequest(request.scope, request.receive))

        return strict
