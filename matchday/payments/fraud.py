"""Velocity rules: too many checkouts per customer, card or address hold an order for review.

Signals are recorded for every checkout that reaches the payment step: customer, the card's
fingerprint as the gateway names it (never the number) and the client address (unless it is
loopback, i.e. a local proxy's). An order over any limit within the window is held (status
``review``) before any charge, and the hold goes to the suspicious-activity log.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from matchday.payments.ports import SignalStore


@dataclass(frozen=True, slots=True)
class VelocityLimits:
    window_s: float = 3600.0
    per_customer: int = 10
    per_card: int = 10
    per_ip: int = 50


class FraudRules:
    def __init__(self, repo: SignalStore, limits: VelocityLimits) -> None:
        self.repo = repo
        self.limits = limits

    async def assess(
        self, order_id: str, customer_id: str, fingerprint: str | None, client_ip: str | None
    ) -> list[str]:
        """Record this checkout's signals; the rules it breaks (empty: let it through)."""
        client_ip = _routable(client_ip)
        await self.repo.add_signal(order_id, customer_id, fingerprint, client_ip)
        seen = await self.repo.velocity(self.limits.window_s, customer_id, fingerprint, client_ip)
        reasons = []
        if seen["customer"] > self.limits.per_customer:
            reasons.append(f"customer_velocity:{seen['customer']}")
        if fingerprint and seen["fingerprint"] > self.limits.per_card:
            reasons.append(f"card_velocity:{seen['fingerprint']}")
        if client_ip and seen["ip"] > self.limits.per_ip:
            reasons.append(f"ip_velocity:{seen['ip']}")
        if reasons:
            await self.repo.suspicious(
                "velocity_hold", order_id, customer_id, {"reasons": reasons, "ip": client_ip}
            )
        return reasons


def _routable(ip: str | None) -> str | None:
    """The address, unless it says nothing about the client: behind a local proxy (HAProxy,
    the Python proxy) every request comes from loopback, and one shared address must not
    hold every shopper's order."""
    try:
        addr = ipaddress.ip_address(ip or "")
    except ValueError:
        return None
    return None if addr.is_loopback or addr.is_unspecified else str(addr)
