"""Where a failed actor call becomes a matchday error: typed, with a fixed message.

An error raised inside an actor reaches the caller as Ray's ``RayTaskError(<its class>)``:
an instance of the domain class (so ``except WrongShard`` still matches) whose ``str()`` is
the remote traceback, with file paths, the worker's pid, the actor id and ANSI colours. That
text once went out in a 503 body (issue 13, item 4). Any other Ray error (the actor died, is
restarting, cannot be reached) says nothing a client can use either. Both end here: the
domain error comes back as the plain instance the actor raised, everything else as
``Unavailable`` with a fixed message, and the detail goes to this process's log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from ray.exceptions import RayError, RayTaskError

from matchday.domain.errors import MatchdayError, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


def domain_error(exc: BaseException, what: str) -> MatchdayError:
    """The error a client may see for ``exc``, raised by a call to ``what``."""
    cause = exc.cause if isinstance(exc, RayTaskError) else exc
    if isinstance(cause, MatchdayError) and not isinstance(cause, RayError):
        return cause  # the instance the actor raised, unpickled: its own message
    log.warning("%s failed: %r", what, exc)
    return Unavailable(f"{what} is not answering; retry")


async def call(ref: Awaitable[T], what: str) -> T:
    """Await an actor call (``handle.method.remote(...)``); a failure is a MatchdayError."""
    try:
        return await ref
    except RayError as exc:
        raise domain_error(exc, what) from None
