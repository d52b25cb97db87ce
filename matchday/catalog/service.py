"""The catalogue service: PostgreSQL behind a Redis read cache, availability merged fresh.

Redis keys (``P`` is ``cache_prefix``):

- ``P:version``: a counter bumped after every committed change. Every cache key embeds it,
  so one INCR makes every replica miss at once; old entries simply expire (``cache_ttl_s``).
- ``P:v<version>:product:<slug>``, ``P:v<version>:list:<hash of the query>``,
  ``P:v<version>:best:<limit>``, ``P:v<version>:categories``: JSON without availability.
- ``availability_key`` (a hash SKU -> units available) belongs to the outbox relay; this
  service only reads it, and fills in SKUs the relay has not published yet with HSETNX so
  that it never overwrites a newer figure from the relay.

Redis is an accelerator, never a dependency: when it fails, reads go to PostgreSQL and a
warning is logged (at most once per ``redis_retry_s``, for which Redis is then skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.exceptions import RedisError

from matchday.catalog.models import (
    SKU_PATTERN,
    SLUG_PATTERN,
    BestSeller,
    BestSellerRecord,
    CategoryIn,
    CategoryOut,
    ListQuery,
    PageRecord,
    ProductIn,
    ProductOut,
    ProductPage,
    ProductPatch,
    ProductRecord,
)
from matchday.catalog.ports import CatalogStore
from matchday.domain.cards import carries_pan
from matchday.domain.errors import InvalidInput, NotFound
from matchday.domain.prices import PriceInfo
from matchday.inventory.routing import Router
from matchday.metrics import CATALOG_CACHE, NOOP, Metrics

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

MAX_BEST_SELLERS = 50
MAX_PRICE_LOOKUP = 1000
_SLUG_RE = re.compile(SLUG_PATTERN)
_SKU_RE = re.compile(SKU_PATTERN)


class CatalogService:
    def __init__(
        self,
        repo: CatalogStore,
        redis: aioredis.Redis,
        *,
        availability_key: str,
        cache_prefix: str = "matchday:catalog",
        cache_ttl_s: float = 60.0,
        # For answers that depend on stock counters (best sellers, the in-stock filter, the
        # best_selling sort): sales change them without a catalogue edit, so only this TTL
        # bounds how stale they get.
        stock_ttl_s: float = 15.0,
        redis_timeout_s: float = 0.5,
        redis_retry_s: float = 1.0,
        metrics: Metrics = NOOP,  # a Serve replica's is Ray's (actors/metrics.py)
    ) -> None:
        self.repo = repo
        self.redis = redis
        self.availability_key = availability_key
        self.prefix = cache_prefix
        self.ttl_ms = max(1, int(cache_ttl_s * 1000))
        self.stock_ttl_ms = max(1, int(stock_ttl_s * 1000))
        self.redis_timeout_s = redis_timeout_s
        self.redis_retry_s = redis_retry_s
        self._redis_down_until = 0.0
        self._missed_invalidation = False
        self.redis_failures = 0
        self.metrics = metrics

    # -- reads -----------------------------------------------------------------------------

    async def list_products(self, query: ListQuery) -> ProductPage:
        digest = hashlib.sha256(query.model_dump_json().encode()).hexdigest()[:32]
        by_stock = query.in_stock or query.sort == "best_selling"
        ttl = self.stock_ttl_ms if by_stock else self.ttl_ms
        page = await self._cached(f"list:{digest}", PageRecord, ttl, lambda: self._load_page(query))
        available = await self._availability(_skus(page.items))
        items = [ProductOut.merge(r, available) for r in page.items]
        end = query.offset + len(items)
        return ProductPage(
            items=items,
            total=page.total,
            offset=query.offset,
            limit=query.limit,
            next_offset=end if items and end < page.total else None,
        )

    async def get_product(self, slug: str) -> ProductOut:
        """The active product ``slug``; NotFound if it is missing or deactivated."""
        if not _is_slug(slug) or carries_pan(slug):  # never a cache key (Redis AOF)
            raise NotFound("product", _shown(slug))
        record = await self._cached(
            f"product:{slug}", _Maybe, self.ttl_ms, lambda: self._load_product(slug)
        )
        # Absence is cached too, so a flood of requests for a bad slug stays off PostgreSQL.
        if record.product is None:
            raise NotFound("product", slug)
        available = await self._availability(_skus([record.product]))
        return ProductOut.merge(record.product, available)

    async def best_sellers(self, limit: int = 10) -> list[BestSeller]:
        if not 1 <= limit <= MAX_BEST_SELLERS:
            raise InvalidInput("limit", f"must be 1-{MAX_BEST_SELLERS}")
        best = await self._cached(
            f"best:{limit}", _BestList, self.stock_ttl_ms, lambda: self._load_best(limit)
        )
        available = await self._availability(_skus([b.product for b in best.items]))
        return [
            BestSeller(product=ProductOut.merge(b.product, available), units_sold=b.units_sold)
            for b in best.items
        ]

    async def categories(self) -> list[CategoryOut]:
        cached = await self._cached("categories", _Categories, self.ttl_ms, self._load_categories)
        return cached.items

    async def variant_skus(self, slug: str, *, include_inactive: bool = False) -> list[str]:
        """The product's SKUs from PostgreSQL (not cached: admin and carts act on them)."""
        skus = None
        if _is_slug(slug) and not carries_pan(slug):
            skus = await self.repo.variant_skus(slug, include_inactive=include_inactive)
        if skus is None:
            raise NotFound("product", _shown(slug))
        return skus

    async def price_of(self, skus: Sequence[str]) -> dict[str, PriceInfo]:
        """Current prices for checkout, straight from PostgreSQL so that a price change
        applies at once whatever the cache holds.

        SKUs that are unknown, malformed or of inactive products are absent from the answer.
        """
        wanted = sorted({s for s in skus if isinstance(s, str) and _SKU_RE.fullmatch(s)})
        if len(wanted) > MAX_PRICE_LOOKUP:
            raise InvalidInput("skus", f"at most {MAX_PRICE_LOOKUP} per call")
        return await self.repo.prices(wanted) if wanted else {}

    # -- writes ----------------------------------------------------------------------------

    async def put_category(self, category: CategoryIn) -> None:
        await self.repo.put_category(category)
        await self._invalidate()

    async def create_product(self, product: ProductIn, router: Router) -> ProductOut:
        record = await self.repo.create_product(product, router)
        await self._invalidate()
        return ProductOut.merge(record, await self._availability(_skus([record])))

    async def update_product(self, slug: str, patch: ProductPatch) -> ProductOut:
        if not _is_slug(slug):
            raise NotFound("product", slug[:64])
        record = await self.repo.update_product(slug, patch)
        await self._invalidate()
        return ProductOut.merge(record, await self._availability(_skus([record])))

    async def deactivate_product(self, slug: str) -> None:
        """Hide the product from every listing and page; its SKUs and history stay."""
        if not _is_slug(slug):
            raise NotFound("product", slug[:64])
        await self.repo.deactivate(slug)
        await self._invalidate()

    async def seed(self, categories: Sequence[CategoryIn], products: Sequence[ProductIn]) -> int:
        inserted = await self.repo.seed_products(categories, products)
        if inserted:
            await self._invalidate()
        return inserted

    # -- cache -----------------------------------------------------------------------------

    async def _cached(
        self, name: str, model: type[M], ttl_ms: int, load: Callable[[], Awaitable[M]]
    ) -> M:
        version = await self._redis(self._version())
        key = f"{self.prefix}:v{version}:{name}" if version is not None else None
        if key is not None:
            raw = await self._redis(self.redis.get(key))
            if raw is not None:
                self.metrics.inc(CATALOG_CACHE, tags={"result": "hit"})
                try:
                    return model.model_validate_json(raw)
                except ValueError:
                    log.warning("unreadable catalogue cache entry %s; reloading", key)
        self.metrics.inc(CATALOG_CACHE, tags={"result": "miss"})
        value = await load()
        if key is not None:
            await self._redis(self.redis.set(key, value.model_dump_json(), px=ttl_ms))
        return value

    async def _version(self) -> int:
        key = f"{self.prefix}:version"
        if self._missed_invalidation:
            # This process changed the catalogue while Redis was unreachable: bump now, before
            # anything is read from (or written to) entries cached before the change.
            version = await self._bump()
            self._missed_invalidation = False
            return version
        raw = await self.redis.get(key)
        if raw is None:
            return await self._bump()
        return int(raw)

    async def _bump(self) -> int:
        key = f"{self.prefix}:version"
        pipe = self.redis.pipeline(transaction=False)
        # A lost counter (Redis restarted without its data) restarts from the clock, not from
        # 0, so that a surviving entry of an earlier version can never be read as current.
        pipe.set(key, time.time_ns() // 1_000_000, nx=True)
        pipe.incr(key)
        _, version = await pipe.execute()
        return int(version)

    async def _invalidate(self) -> None:
        # After the commit: a reader that missed before it may cache the old data, but under
        # the old version, which nobody reads once this INCR lands.
        if await self._redis(self._bump()) is None:
            self._missed_invalidation = True
            log.warning(
                "catalogue cache not invalidated (Redis unavailable): other replicas may serve"
                " the old entries for up to %.0f s",
                self.ttl_ms / 1000,
            )

    async def availability(self, skus: Sequence[str]) -> dict[str, int]:
        """Units available now per SKU, from the engine's Redis copy (PostgreSQL for the
        ones it lacks); unknown or malformed SKUs are left out."""
        wanted = sorted({s for s in skus if isinstance(s, str) and _SKU_RE.fullmatch(s)})
        if len(wanted) > MAX_PRICE_LOOKUP:
            raise InvalidInput("skus", f"at most {MAX_PRICE_LOOKUP} per call")
        return await self._availability(wanted)

    async def _availability(self, skus: list[str]) -> dict[str, int]:
        if not skus:
            return {}
        values = await self._redis(self.redis.hmget(self.availability_key, skus))
        found: dict[str, int] = {}
        for sku, raw in zip(skus, values or [None] * len(skus), strict=True):
            if raw is not None:
                # A garbled value is not ours to repair (the relay's next write replaces it):
                # treat the SKU as missing and read it from PostgreSQL.
                with contextlib.suppress(ValueError):
                    found[sku] = max(0, int(raw))
        missing = [s for s in skus if s not in found]
        if missing:
            fallback = await self.repo.available(missing)
            found |= fallback
            if fallback and values is not None:
                await self._redis(self._fill(fallback))
        return found

    async def _fill(self, available: dict[str, int]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for sku, units in available.items():
            pipe.hsetnx(self.availability_key, sku, units)
        await pipe.execute()

    async def _redis(self, call: Awaitable[Any]) -> Any:
        """Run one Redis call; None (and Redis skipped for a while) if it fails."""
        if time.monotonic() < self._redis_down_until:
            _close(call)
            return None
        try:
            return await asyncio.wait_for(call, self.redis_timeout_s)
        except (RedisError, OSError, TimeoutError) as exc:
            self.redis_failures += 1
            self._redis_down_until = time.monotonic() + self.redis_retry_s
            log.warning("Redis unavailable (%r); serving the catalogue from PostgreSQL", exc)
            return None

    # -- loaders ---------------------------------------------------------------------------

    async def _load_page(self, query: ListQuery) -> PageRecord:
        items, total = await self.repo.list_products(query)
        return PageRecord(items=items, total=total)

    async def _load_product(self, slug: str) -> _Maybe:
        return _Maybe(product=await self.repo.product(slug))

    async def _load_best(self, limit: int) -> _BestList:
        ranked = await self.repo.best_sellers(limit)
        return _BestList(items=[BestSellerRecord(product=r, units_sold=n) for r, n in ranked])

    async def _load_categories(self) -> _Categories:
        return _Categories(items=await self.repo.categories())


class _Maybe(BaseModel):
    product: ProductRecord | None


class _BestList(BaseModel):
    items: list[BestSellerRecord]


class _Categories(BaseModel):
    items: list[CategoryOut]


def _skus(records: Sequence[ProductRecord]) -> list[str]:
    return [v.sku for r in records for v in r.variants]


def _close(call: Awaitable[Any]) -> None:
    # A coroutine never awaited warns at garbage collection; close it instead.
    close = getattr(call, "close", None)
    if close is not None:
        close()


def _shown(slug: str) -> str:
    """A slug for a 404 message: never one that could be a card number (the HTTP guard
    refuses those first; this keeps any other caller from echoing one)."""
    return "(not shown: it looks like a card number)" if carries_pan(slug) else slug[:64]


def _is_slug(value: object) -> bool:
    return isinstance(value, str) and _SLUG_RE.fullmatch(value) is not None
