"""A channel selling through the engine: key check, reserve, commit, release, stock.

Every call names the channel's own request id; the engine sees it as
``ch:<channel>:<request id>``, so two channels (or a channel and the shop) can never share
one, and a retry of a call gets the engine's first answer. A reply to a request id reused
for another SKU or quantity is refused (409) rather than passed off as this one's. A
channel commits and releases only its own reservations: any other is "unknown" to it.
"""

from __future__ import annotations

from matchday.channels.model import Channel, ChannelStockView, channel_of, key_matches
from matchday.channels.ports import ChannelEngine, ChannelStore
from matchday.domain.errors import Conflict, Forbidden, Unauthorized, UnknownReservation
from matchday.inventory.commands import ReservationView

DEFAULT_TTL_S = 900.0  # a marketplace's checkout, longer than the shop's cart


def engine_request_id(channel_id: str, request_id: str) -> str:
    return f"ch:{channel_id}:{request_id}"


class ChannelSales:
    def __init__(self, repo: ChannelStore, engine: ChannelEngine) -> None:
        self.repo = repo
        self.engine = engine

    async def authenticate(self, key: str | None) -> str:
        """The channel a key belongs to: 401 for no or a wrong key, 403 if disabled."""
        channel = channel_of(key or "")
        stored = None if channel is None else await self.repo.key_of(channel)
        if channel is None or stored is None or not key_matches(channel, key or "", stored[1]):
            raise Unauthorized("a valid channel API key is required (Authorization: Bearer)")
        if not stored[0]:
            raise Forbidden(f"channel {channel} is disabled")
        return channel

    async def reserve(
        self,
        channel: str,
        request_id: str,
        sku: str,
        qty: int,
        order_id: str,
        customer_id: str,
        ttl_s: float,
    ) -> ReservationView:
        rid = engine_request_id(channel, request_id)
        held = await self.engine.reserve_for(
            channel, rid, sku, qty, order_id, f"{channel}:{customer_id}", ttl_s
        )
        if held.channel != channel or held.sku != sku or held.qty != qty:
            raise Conflict(f"request_id {request_id} was used for another request")
        return held

    async def commit(
        self, channel: str, request_id: str, reservation_id: str, order_id: str
    ) -> ReservationView:
        sku = await self._own(channel, reservation_id)
        rid = engine_request_id(channel, request_id)
        done = await self.engine.commit(rid, sku, reservation_id, order_id)
        return self._same(done, reservation_id, request_id)

    async def release(self, channel: str, request_id: str, reservation_id: str) -> ReservationView:
        sku = await self._own(channel, reservation_id)
        rid = engine_request_id(channel, request_id)
        done = await self.engine.release(rid, sku, reservation_id)
        return self._same(done, reservation_id, request_id)

    async def stock(self, channel: str, skus: list[str] | None) -> list[ChannelStockView]:
        return await self.repo.stock(channel, skus)

    async def _own(self, channel: str, reservation_id: str) -> str:
        holder = await self.repo.holder(reservation_id)
        if holder is None or holder[0] != channel:
            raise UnknownReservation(reservation_id)
        return holder[1]

    @staticmethod
    def _same(done: ReservationView, reservation_id: str, request_id: str) -> ReservationView:
        if done.reservation_id != reservation_id:
            raise Conflict(f"request_id {request_id} was used for another request")
        return done


def public(r: ReservationView) -> dict[str, object]:
    return {
        "reservation_id": r.reservation_id,
        "sku": r.sku,
        "qty": r.qty,
        "order_id": r.cart_id if r.status == "held" else r.order_id,
        "status": r.status,
        "expires_at": r.expires_at,
    }


__all__ = ["DEFAULT_TTL_S", "Channel", "ChannelSales", "engine_request_id", "public"]
