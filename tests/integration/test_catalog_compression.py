"""The catalogue's larger answers go gzip-compressed to clients that accept it."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from matchday.settings import Settings
from tests.integration.shop_stack import Stack, open_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with open_stack(settings) as s:
        yield s


async def raw_get(stack: Stack, path: str, encoding: str) -> tuple[httpx.Response, bytes]:
    """The answer and its body's bytes as sent (httpx would otherwise decode them)."""
    request = stack.catalog.build_request("GET", path, headers={"Accept-Encoding": encoding})
    response = await stack.catalog.send(request, stream=True)
    raw = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return response, raw


async def test_a_page_of_products_is_gzipped_and_decodes_to_the_plain_answer(
    stack: Stack,
) -> None:
    for _ in range(12):
        await stack.product(stock=3, sizes=2)
    plain = await stack.catalog.get("/products", params={"limit": 50})
    assert plain.status_code == 200 and len(plain.content) > 2048
    zipped, raw = await raw_get(stack, "/products?limit=50", "gzip")
    assert zipped.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in zipped.headers["vary"].lower()
    body = json.loads(gzip.decompress(raw))
    assert body["items"] == plain.json()["items"]
    assert len(raw) < len(plain.content) / 3


async def test_small_answers_and_clients_without_gzip_get_plain_json(stack: Stack) -> None:
    (sku,) = await stack.product(stock=3)
    small, raw = await raw_get(stack, f"/availability?sku={sku}", "gzip")
    assert "content-encoding" not in small.headers and json.loads(raw) == {sku: 3}
    identity, raw = await raw_get(stack, "/products?limit=50", "identity")
    assert "content-encoding" not in identity.headers and json.loads(raw)["items"]
