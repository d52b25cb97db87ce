"""Supplier pushes over HTTP against real PostgreSQL, Redis and the engine's shard core:
signatures, replays, idempotency, malformed messages, holds revoked by a lower count."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from matchday.domain.errors import Unavailable
from matchday.settings import Settings
from matchday.suppliers.admin import SupplierPatch
from matchday.suppliers.signing import sign
from tests.integration.suppliers_stack import SupplierStack, open_supplier_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def stack(settings: Settings):
    async with open_supplier_stack(settings) as s:
        yield s


async def messages(stack: SupplierStack, supplier_id: str) -> list[tuple[str, str]]:
    async with stack.shop.ctx.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT message_id, status FROM supplier_messages WHERE supplier_id = %s"
            " ORDER BY message_id",
            (supplier_id,),
        )
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def test_a_signed_push_applies_levels_and_deltas_through_the_engine(
    stack: SupplierStack,
) -> None:
    sid, secret = await stack.supplier()
    a, b, c = await stack.mapped(sid, stock=10, n=3)
    r = await stack.send(
        sid, secret,
        [{"sku": f"S-{a}", "level": 4}, {"sku": f"S-{b}", "delta": 6},
         {"sku": f"S-{c}", "delta": -3}],
    )  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["applied"], body["unchanged"], body["rejected"]) == (3, 0, 0)
    assert [(ln["sku"], ln["before"], ln["after"]) for ln in body["lines"]] == [
        (a, 10, 4), (b, 10, 16), (c, 10, 7),
    ]  # fmt: skip
    assert body["lines"][0]["drift"] == 6  # matchday counted 6 more than the supplier
    assert [await stack.shop.stock(s) for s in (a, b, c)] == [(4, 0, 0), (16, 0, 0), (7, 0, 0)]
    assert await messages(stack, sid) == [(body["message_id"], "done")]


async def test_a_retried_message_gets_its_first_answer_and_applies_once(
    stack: SupplierStack,
) -> None:
    sid, secret = await stack.supplier()
    (sku,) = await stack.mapped(sid, stock=10)
    lines = [{"sku": f"S-{sku}", "delta": 5}]
    first = await stack.send(sid, secret, lines, message_id="m-retry-1")
    # The supplier retries later, signing again with a new timestamp: same message.
    again = await stack.send(sid, secret, lines, message_id="m-retry-1", at=time.time() + 5)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert await stack.shop.stock(sku) == (15, 0, 0)
    other = await stack.send(sid, secret, [{"sku": f"S-{sku}", "delta": 9}], message_id="m-retry-1")
    assert other.status_code == 409 and "another body" in other.json()["message"]
    assert await stack.shop.stock(sku) == (15, 0, 0)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no signature", 401, "invalid_signature"),
        ("wrong secret", 401, "invalid_signature"),
        ("tampered body", 401, "invalid_signature"),
        ("replayed an hour later", 401, "invalid_signature"),
        ("unknown supplier", 404, "not_found"),
        ("not json media", 415, "unsupported_media_type"),
        ("too large", 413, "payload_too_large"),
        ("deactivated", 403, "forbidden"),
    ],
)
async def test_every_refused_push_is_a_clear_4xx_and_changes_nothing(
    stack: SupplierStack, case: str, status: int, code: str
) -> None:
    sid, secret = await stack.supplier()
    (sku,) = await stack.mapped(sid, stock=10)
    body = json.dumps({"message_id": "m-x", "lines": [{"sku": f"S-{sku}", "level": 1}]}).encode()
    now = int(time.time())
    headers = {"X-Matchday-Timestamp": str(now), "X-Matchday-Signature": sign(secret, now, body),
               "Content-Type": "application/json"}  # fmt: skip
    path = f"/{sid}/stock"
    if case == "no signature":
        del headers["X-Matchday-Signature"]
    elif case == "wrong secret":
        _, other = await stack.supplier()
        headers["X-Matchday-Signature"] = sign(other, now, body)
    elif case == "tampered body":
        body = body.replace(b'"level": 1', b'"level": 9')
    elif case == "replayed an hour later":
        headers["X-Matchday-Timestamp"] = str(now - 3600)
        headers["X-Matchday-Signature"] = sign(secret, now - 3600, body)
    elif case == "unknown supplier":
        path = "/nobody-here/stock"
    elif case == "not json media":
        headers["Content-Type"] = "text/plain"
    elif case == "too large":
        body = b" " * (stack.shop.ctx.settings.max_body_bytes + 1)
    elif case == "deactivated":
        await stack.services.admin.update(sid, SupplierPatch(active=False))
    r = await stack.push.post(path, content=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()
    assert error["code"] == code and error["message"] and error["retryable"] is False
    assert await stack.shop.stock(sku) == (10, 0, 0)
    assert await messages(stack, sid) == []  # not even the message id was taken


async def test_a_lying_message_is_refused_whole_and_its_id_stays_usable(
    stack: SupplierStack,
) -> None:
    sid, secret = await stack.supplier(max_units=500)
    a, b = await stack.mapped(sid, stock=10, n=2)
    lies = [
        {"sku": f"S-{a}", "level": 3},
        {"sku": f"S-{b}", "level": -4},
        {"sku": f"S-{b}", "level": 4},
        {"sku": f"S-{a}", "delta": 10**6},
    ]
    r = await stack.send(sid, secret, lies, message_id="m-lie")
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [e["line"] for e in errors] == [2, 3, 4]
    assert "negative" in errors[0]["message"] and "bound of 500" in errors[2]["message"]
    assert await stack.shop.stock(a) == (10, 0, 0) and await stack.shop.stock(b) == (10, 0, 0)
    fixed = await stack.send(sid, secret, lies[:1], message_id="m-lie")
    assert fixed.status_code == 200 and await stack.shop.stock(a) == (3, 0, 0)
    garbage = await stack.post(sid, secret, b'{"message_id": "m-g", "lines": [')
    assert garbage.status_code == 422 and garbage.json()["code"] == "invalid_feed"


async def test_unmapped_and_stale_lines_are_reported_and_the_rest_applied(
    stack: SupplierStack,
) -> None:
    sid, secret = await stack.supplier()
    (sku,) = await stack.mapped(sid, stock=10)
    now = time.time()
    newer = await stack.send(sid, secret, [{"sku": f"S-{sku}", "level": 7}], as_of=now)
    assert newer.json()["applied"] == 1
    r = await stack.send(
        sid, secret,
        [{"sku": f"S-{sku}", "level": 2}, {"sku": "NOT-MAPPED", "level": 1}],
        as_of=now - 60,  # counted a minute before the level already applied
    )  # fmt: skip
    assert r.status_code == 200
    lines = r.json()["lines"]
    assert [(ln["status"], ln.get("reason")) for ln in lines] == [
        ("rejected", "stale"), ("rejected", "unmapped"),
    ]  # fmt: skip
    assert await stack.shop.stock(sku) == (7, 0, 0)


async def test_a_lower_count_under_live_holds_revokes_the_newest_and_oversells_nothing(
    stack: SupplierStack,
) -> None:
    sid, secret = await stack.supplier()
    (sku,) = await stack.mapped(sid, stock=5)
    shoppers: list[tuple[dict[str, str], str]] = []
    for qty in (2, 2, 1):  # oldest first
        auth = await stack.shop.session()
        cart = await stack.shop.cart(auth)
        r = await stack.shop.shop.post(
            f"/carts/{cart}/items", json={"sku": sku, "qty": qty}, headers=auth
        )
        assert r.status_code == 201, r.text
        shoppers.append((auth, cart))
    r = await stack.send(sid, secret, [{"sku": f"S-{sku}", "level": 3}])
    line = r.json()["lines"][0]
    assert line["status"] == "applied" and len(line["revoked"]) == 2  # the 1 and the newer 2
    assert await stack.shop.stock(sku) == (3, 2, 0)
    paid: list[dict[str, Any]] = []
    for n, (auth, cart) in enumerate(shoppers):
        r = await stack.shop.orders.post(
            "/", json={"cart_id": cart, "payment_token": "pm_card_visa"},
            headers={**auth, "Idempotency-Key": f"pay-{n}"},
        )  # fmt: skip
        if r.status_code == 201 and r.json()["status"] == "paid":
            paid.append(r.json())
    assert len(paid) == 1  # the oldest hold, 2 units
    on_hand, reserved, sold = await stack.shop.stock(sku)
    assert (sold, reserved) == (2, 0) and on_hand - sold == 1  # one unit left, none oversold


class AnswerLost:
    """The engine applies the first call and the answer is lost on the way back."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lost = 1

    async def set_on_hand(self, rid: str, sku: str, units: int) -> Any:
        return await self._lose(await self.inner.set_on_hand(rid, sku, units))

    async def restock(self, rid: str, sku: str, qty: int) -> Any:
        return await self._lose(await self.inner.restock(rid, sku, qty))

    async def _lose(self, answer: Any) -> Any:
        if self.lost:
            self.lost -= 1
            raise Unavailable("inventory shard 0 unavailable")
        return answer


async def test_an_engine_outage_answers_503_and_the_retry_applies_once(settings: Settings) -> None:
    async with open_supplier_stack(settings) as plain:
        engine = AnswerLost(plain.shop.ctx.stock)
    async with open_supplier_stack(settings, engine=engine) as stack:
        engine.inner = stack.shop.ctx.stock
        sid, secret = await stack.supplier()
        (sku,) = await stack.mapped(sid, stock=10)
        lines = [{"sku": f"S-{sku}", "delta": 4}]
        r = await stack.send(sid, secret, lines, message_id="m-out")
        assert r.status_code == 503 and r.headers["Retry-After"] and r.json()["retryable"]
        again = await stack.send(sid, secret, lines, message_id="m-out")
        assert again.status_code == 200 and again.json()["applied"] == 1
        assert await stack.shop.stock(sku) == (14, 0, 0)  # applied before the loss, once
