"""A card number in any field of any POST to the order and webhook apps is refused, and it
appears in no table, no Redis key and no log line afterwards."""

from __future__ import annotations

import logging

import httpx
import pytest

from matchday.settings import Settings
from matchday.web import webhooks_api
from tests.integration.shop_stack import open_stack
from tests.integration.test_payments_support import filled_cart

pytestmark = pytest.mark.integration

PANS = ["4242424242424242", "4000 0566 5566 5556", "5555-5555-5555-4444", "378282246310005"]


def digits(pan: str) -> str:
    return pan.replace(" ", "").replace("-", "")


async def test_card_numbers_are_refused_everywhere_and_stored_nowhere(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with open_stack(settings) as stack:
        (sku,) = await stack.product(stock=5)
        auth, cart = await filled_cart(stack, sku)
        hooks_app = webhooks_api.build(stack.ctx, secrets={"primary": "whsec_t"}, events=None)
        hooks = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=hooks_app, root_path="/api/webhooks"),
            base_url="http://shop.test/api/webhooks",
        )
        tries = 0
        for n, pan in enumerate(PANS):
            attempts = [
                stack.orders.post("/", json={"cart_id": cart, "payment_token": pan},
                                  headers={**auth, "Idempotency-Key": f"p{n}a"}),
                stack.orders.post("/", json={"cart_id": pan, "payment_token": "pm_card_visa"},
                                  headers={**auth, "Idempotency-Key": f"p{n}b"}),
                stack.orders.post("/", json={"cart_id": cart, "payment_token": "pm_card_visa",
                                             "billing": {"note": f"my card is {pan}"}},
                                  headers={**auth, "Idempotency-Key": f"p{n}c"}),
                # The client address ends up in fraud rows: a card number there is refused.
                # (A card-number-like Idempotency-Key is not refused, it is never stored raw:
                # test_cards_stored_nowhere.py.)
                stack.orders.post("/", json={"cart_id": cart, "payment_token": "pm_card_visa"},
                                  headers={**auth, "X-Forwarded-For": f"10.0.0.1, {pan}"}),
                stack.orders.post(f"/?card={pan}", json={"cart_id": cart,
                                  "payment_token": "pm_card_visa"}, headers=auth),
                stack.orders.post("/", content=f"cart_id={cart}&card={pan}",
                                  headers={**auth, "Content-Type":
                                           "application/x-www-form-urlencoded"}),
                # JSON's \uXXXX spelling of the digits is the same number to the app.
                stack.orders.post("/", content=escaped_body(cart, pan),
                                  headers={**auth, "Content-Type": "application/json",
                                           "Idempotency-Key": f"p{n}d"}),
                hooks.post("/stripe/primary", json={"id": "evt_1", "data": {"object": {
                           "card": pan}}}, headers={"Stripe-Signature": "t=1,v1=00"}),
            ]  # fmt: skip
            for call in attempts:
                r = await call
                tries += 1
                assert r.status_code == 422, r.text
                assert r.json()["code"] == "card_data_refused"
                assert digits(pan) not in r.text and pan not in r.text
        await hooks.aclose()
        assert tries == len(PANS) * 8
        assert stack.gateway.charges == {}  # nothing was charged
        assert await stack.stock(sku) == (5, 1, 0)  # and the cart still holds its unit

        found = []
        async with stack.ctx.pool.connection() as conn:
            tables = await (
                await conn.execute(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            ).fetchall()
            assert len(tables) > 10
            for (table,) in tables:
                rows = await (await conn.execute(f'SELECT t::text FROM "{table}" t')).fetchall()
                text = "\n".join(r[0] for r in rows)
                found += [(table, p) for p in PANS if p in text or digits(p) in text]
        redis_text = []
        async for key in stack.ctx.redis.scan_iter(count=1000):
            kind = (await stack.ctx.redis.type(key)).decode()
            redis_text.append(key.decode(errors="replace"))
            if kind == "string":
                redis_text.append(str(await stack.ctx.redis.get(key)))
            elif kind == "hash":
                redis_text.append(str(await stack.ctx.redis.hgetall(key)))
            elif kind == "stream":
                redis_text.append(str(await stack.ctx.redis.xrange(key)))
        blob = "\n".join(redis_text)
        found += [("redis", p) for p in PANS if p in blob or digits(p) in blob]
        # Every record but the test client's own (httpx logs the URL it requested).
        server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
        logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in server)
        found += [("logs", p) for p in PANS if p in logs or digits(p) in logs]
        assert found == []


def escaped_body(cart: str, pan: str) -> str:
    note = "".join(f"\\u{ord(c):04x}" for c in pan)
    return f'{{"cart_id": "{cart}", "payment_token": "pm_card_visa", "note": "{note}"}}'
