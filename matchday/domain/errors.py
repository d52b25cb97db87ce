"""Typed errors of the shop.

Every error passes all of its constructor arguments to ``Exception.__init__`` so that it
pickles across Ray processes unchanged (``BaseException.__reduce__`` rebuilds it from
``self.args``). Each one carries a stable ``code`` and the HTTP status the ingress maps it to;
that mapping lives here so it is defined once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, cast


class MatchdayError(Exception):
    """Base of every error a client may see."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 400
    retryable: ClassVar[bool] = False

    @property
    def message(self) -> str:
        # The domain class's own text, also for a wrapper that subclasses it: Ray re-raises a
        # remote error as RayTaskError(<its class>), whose str() is the remote traceback
        # (paths, pid, actor id, ANSI colours), and that once reached a 503 body.
        own = next(c for c in type(self).__mro__ if _pure(c))
        render = cast("Callable[[MatchdayError], str]", own.__str__)  # unbound: the class's own
        return render(self)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


def _pure(cls: type) -> bool:
    """A matchday error class, not a wrapper that also subclasses a foreign exception."""
    return all(
        issubclass(c, MatchdayError) or c in (Exception, BaseException, object) for c in cls.__mro__
    )


class InvalidInput(MatchdayError):
    code = "invalid_input"
    http_status = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class UnknownSku(MatchdayError):
    code = "unknown_sku"
    http_status = 404

    def __init__(self, sku: str) -> None:
        super().__init__(sku)
        self.sku = sku

    def __str__(self) -> str:
        return f"no such SKU: {self.sku}"


class OutOfStock(MatchdayError):
    code = "out_of_stock"
    http_status = 409

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(sku, requested, available)
        self.sku = sku
        self.requested = requested
        self.available = available

    def __str__(self) -> str:
        return f"{self.sku}: {self.requested} requested, {self.available} available"


class LimitExceeded(MatchdayError):
    """A per-customer or per-order limit refuses the request."""

    code = "limit_exceeded"
    http_status = 409

    def __init__(self, sku: str, limit: int, requested: int, held: int, kind: str) -> None:
        super().__init__(sku, limit, requested, held, kind)
        self.sku = sku
        self.limit = limit
        self.requested = requested
        self.held = held
        self.kind = kind

    def __str__(self) -> str:
        return (
            f"{self.sku}: {self.kind} limit is {self.limit}; "
            f"{self.requested} requested with {self.held} already held"
        )


class AllocationExceeded(MatchdayError):
    """A channel's allocation of a SKU refuses the units (ADR 0028)."""

    code = "allocation_exceeded"
    http_status = 409

    def __init__(self, sku: str, channel: str, requested: int, remaining: int) -> None:
        super().__init__(sku, channel, requested, remaining)
        self.sku = sku
        self.channel = channel
        self.requested = requested
        self.remaining = remaining

    def __str__(self) -> str:
        return (
            f"{self.sku}: channel {self.channel} has {self.remaining} units left of its "
            f"allocation; {self.requested} requested"
        )


class UnknownReservation(MatchdayError):
    code = "unknown_reservation"
    http_status = 404

    def __init__(self, reservation_id: str) -> None:
        super().__init__(reservation_id)
        self.reservation_id = reservation_id

    def __str__(self) -> str:
        return f"no such reservation: {self.reservation_id}"


class ReservationExpired(MatchdayError):
    code = "reservation_expired"
    http_status = 410

    def __init__(self, reservation_id: str) -> None:
        super().__init__(reservation_id)
        self.reservation_id = reservation_id

    def __str__(self) -> str:
        return f"reservation {self.reservation_id} has expired"


class ReservationClosed(MatchdayError):
    """The reservation was already committed, released, expired or revoked."""

    code = "reservation_closed"
    http_status = 409

    def __init__(self, reservation_id: str, status: str) -> None:
        super().__init__(reservation_id, status)
        self.reservation_id = reservation_id
        self.status = status

    def __str__(self) -> str:
        return f"reservation {self.reservation_id} is {self.status}"


class InvariantViolation(MatchdayError):
    """A mutation would break a ledger invariant (e.g. restocking below units sold)."""

    code = "invariant_violation"
    http_status = 409

    def __init__(self, sku: str, reason: str) -> None:
        super().__init__(sku, reason)
        self.sku = sku
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.sku}: {self.reason}"


class WrongShard(MatchdayError):
    """The SKU is owned by another shard; the client re-routes and retries."""

    code = "wrong_shard"
    http_status = 503
    retryable = True

    def __init__(self, sku: str, owner: int) -> None:
        super().__init__(sku, owner)
        self.sku = sku
        self.owner = owner

    def __str__(self) -> str:
        return f"{self.sku} is owned by shard {self.owner}"


class StaleEpoch(MatchdayError):
    """A fenced-off (zombie) shard tried to write."""

    code = "stale_epoch"
    http_status = 503
    retryable = True

    def __init__(self, shard_id: int, epoch: int, current: int) -> None:
        super().__init__(shard_id, epoch, current)
        self.shard_id = shard_id
        self.epoch = epoch
        self.current = current

    def __str__(self) -> str:
        return f"shard {self.shard_id} epoch {self.epoch} is fenced off by epoch {self.current}"


class Unavailable(MatchdayError):
    """A dependency failed; nothing was changed. Safe to retry with the same request id."""

    code = "unavailable"
    http_status = 503
    retryable = True

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class NotFound(MatchdayError):
    """A product, cart, order, poll or other resource that does not exist (or is not yours)."""

    code = "not_found"
    http_status = 404

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(kind, ident)
        self.kind = kind
        self.ident = ident

    def __str__(self) -> str:
        return f"no such {self.kind}: {self.ident}"


class Conflict(MatchdayError):
    """The request contradicts the resource's current state (e.g. paying a closed cart)."""

    code = "conflict"
    http_status = 409

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class Unauthorized(MatchdayError):
    """Missing or wrong credentials (API key, second factor)."""

    code = "unauthorized"
    http_status = 401

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class Forbidden(MatchdayError):
    code = "forbidden"
    http_status = 403

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class RateLimited(MatchdayError):
    """Too many requests from one client; ``retry_after_s`` goes into Retry-After."""

    code = "rate_limited"
    http_status = 429
    retryable = True

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"too many requests; retry after {self.retry_after_s:.0f} s"


class Overloaded(MatchdayError):
    """Load shedding: the service is at capacity. Nothing was changed."""

    code = "overloaded"
    http_status = 503
    retryable = True

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"the shop is busy; retry after {self.retry_after_s:.0f} s"


class CartClosed(MatchdayError):
    """The cart went to checkout: it takes no more holds (issue 13 item 5).

    Decided by the inventory engine in the same transaction as the hold, against the cart
    row that checkout changes, so a hold is either part of the checkout or refused.
    """

    code = "cart_closed"
    http_status = 409

    def __init__(self, cart_id: str, status: str) -> None:
        super().__init__(cart_id, status)
        self.cart_id = cart_id
        self.status = status

    def __str__(self) -> str:
        return f"cart {self.cart_id} is {self.status.replace('_', ' ')}: it takes no more items"


_BY_CODE: dict[str, type[MatchdayError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        UnknownSku,
        OutOfStock,
        LimitExceeded,
        UnknownReservation,
        ReservationExpired,
        ReservationClosed,
        InvariantViolation,
        WrongShard,
        StaleEpoch,
        Unavailable,
        NotFound,
        Conflict,
        Unauthorized,
        Forbidden,
        RateLimited,
        Overloaded,
        CartClosed,
        AllocationExceeded,
    )
}


def error_to_record(error: MatchdayError) -> dict[str, Any]:
    """A JSON-able form that :func:`error_from_record` turns back into the same error."""
    return {"error": error.code, "args": list(error.args)}


def error_from_record(record: dict[str, Any]) -> MatchdayError:
    cls = _BY_CODE[record["error"]]
    return cls(*record["args"])


def error_class(code: str) -> type[MatchdayError]:
    """The error class a ``code`` names (every code is unique)."""
    return _BY_CODE[code]
