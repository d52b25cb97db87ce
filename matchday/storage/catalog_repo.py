"""All SQL of the catalogue: categories, products, variants, and the stock figures it reads.

Values are always bound; the only SQL composed at run time is built with ``psycopg.sql`` from
the fixed fragments below. Stock counters are read here (availability fallback, in-stock
filter, units sold) but written only by the inventory engine, except for the initial stock
of a product's new SKUs, inserted in the same transaction as the product.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg_pool import AsyncConnectionPool

from matchday.catalog.models import (
    CategoryIn,
    CategoryOut,
    ListQuery,
    ProductIn,
    ProductPatch,
    ProductRecord,
    VariantRecord,
)
from matchday.domain.errors import Conflict, InvalidInput, NotFound
from matchday.domain.prices import PriceInfo
from matchday.inventory.routing import Router
from matchday.storage.db import StorageConnection

Conn = psycopg.AsyncConnection[Any]

_PRODUCT_COLUMNS = sql.SQL(
    "p.product_id, p.name, p.description, p.category, p.team, p.tags, p.price_cents,"
    " p.currency, p.image_url, p.featured_rank, p.active, p.created_at, p.updated_at"
)
_PRODUCT_FIELDS = [
    "slug",
    "name",
    "description",
    "category",
    "team",
    "tags",
    "price_cents",
    "currency",
    "image_url",
    "featured_rank",
    "active",
    "created_at",
    "updated_at",
]
_UNITS_SOLD = sql.SQL(
    "(SELECT coalesce(sum(i.sold), 0) FROM variants v JOIN inventory i USING (sku)"
    " WHERE v.product_id = p.product_id)"
)
_ORDER = {
    "featured": sql.SQL("p.featured_rank, p.product_id"),
    "price_asc": sql.SQL("p.price_cents, p.product_id"),
    "price_desc": sql.SQL("p.price_cents DESC, p.product_id"),
    "newest": sql.SQL("p.created_at DESC, p.product_id"),
    "best_selling": sql.SQL("{} DESC, p.product_id").format(_UNITS_SOLD),
}
# ProductPatch field -> column; the only identifiers an update ever names.
_PATCHABLE = frozenset(
    {"name", "description", "category", "team", "tags", "price_cents", "currency"}
    | {"image_url", "featured_rank", "active"}
)


class CatalogRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- categories ------------------------------------------------------------------------

    async def put_category(self, category: CategoryIn) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO categories (slug, name, position) VALUES (%s, %s, %s)"
                " ON CONFLICT (slug) DO UPDATE SET name = excluded.name,"
                " position = excluded.position",
                (category.slug, category.name, category.position),
            )

    async def categories(self) -> list[CategoryOut]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT c.slug, c.name, c.position, count(p.product_id) FROM categories c"
                " LEFT JOIN products p ON p.category = c.slug AND p.active"
                " GROUP BY c.slug ORDER BY c.position, c.slug"
            )
            return [
                CategoryOut(slug=s, name=n, position=pos, products=count)
                for s, n, pos, count in await cur.fetchall()
            ]

    # -- writes ----------------------------------------------------------------------------

    async def create_product(self, product: ProductIn, router: Router) -> ProductRecord:
        """Insert the product, its SKUs' inventory rows and its variants, all or nothing."""
        skus = [v.sku for v in product.variants]
        async with self._conn() as conn:
            try:
                async with conn.transaction():
                    cur = await conn.execute(
                        "SELECT sku FROM inventory WHERE sku = ANY(%s::text[]) ORDER BY sku",
                        (skus,),
                    )
                    taken = [row[0] for row in await cur.fetchall()]
                    if taken:
                        raise Conflict(f"SKU already exists: {', '.join(taken)}")
                    await _insert_product(conn, product)
                    await conn.execute(
                        "INSERT INTO inventory (shard_id, sku, on_hand, per_customer_limit)"
                        " SELECT * FROM unnest(%s::int[], %s::text[], %s::bigint[], %s::int[])",
                        (
                            [router.owner(s) for s in skus],
                            skus,
                            [v.initial_stock for v in product.variants],
                            [product.per_customer_limit] * len(skus),
                        ),
                    )
                    await _insert_variants(conn, product, on_conflict=False)
            except psycopg.IntegrityError as exc:
                raise _integrity_error(exc, product.slug) from exc
            record = await _records(conn, [product.slug], active_only=False)
            return record[0]

    async def seed_products(
        self, categories: Sequence[CategoryIn], products: Sequence[ProductIn]
    ) -> int:
        """Insert what is missing, change nothing that exists; return products inserted.

        The SKUs' inventory rows must exist already. Safe to run concurrently: every insert
        skips rows another seeder got to first.
        """
        inserted = 0
        async with self._conn() as conn, conn.transaction():
            for c in categories:
                await conn.execute(
                    "INSERT INTO categories (slug, name, position) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (c.slug, c.name, c.position),
                )
            for product in products:
                inserted += await _insert_product(conn, product, on_conflict=True)
                await _insert_variants(conn, product, on_conflict=True)
        return inserted

    async def update_product(self, slug: str, patch: ProductPatch) -> ProductRecord:
        changes = patch.changes()
        assert set(changes) <= _PATCHABLE, "ProductPatch and _PATCHABLE disagree"
        async with self._conn() as conn:
            if changes:
                assignments = sql.SQL(", ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(col)) for col in changes
                )
                try:
                    cur = await conn.execute(
                        sql.SQL(
                            "UPDATE products SET {}, updated_at = now() WHERE product_id = %s"
                        ).format(assignments),
                        [*changes.values(), slug],
                    )
                except psycopg.IntegrityError as exc:
                    raise _integrity_error(exc, slug) from exc
                if cur.rowcount == 0:
                    raise NotFound("product", slug)
            records = await _records(conn, [slug], active_only=False)
            if not records:
                raise NotFound("product", slug)
            return records[0]

    async def deactivate(self, slug: str) -> None:
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE products SET active = false, updated_at = now()"
                " WHERE product_id = %s AND active",
                (slug,),
            )
            if cur.rowcount == 0:
                cur = await conn.execute("SELECT 1 FROM products WHERE product_id = %s", (slug,))
                if await cur.fetchone() is None:
                    raise NotFound("product", slug)

    # -- reads -----------------------------------------------------------------------------

    async def product(self, slug: str) -> ProductRecord | None:
        """The active product ``slug`` with its variants, or None."""
        async with self._conn() as conn:
            records = await _records(conn, [slug], active_only=True)
            return records[0] if records else None

    async def list_products(self, query: ListQuery) -> tuple[list[ProductRecord], int]:
        """One page of active products matching ``query``, and how many match in all."""
        where, params = _filters(query)
        order = _ORDER[query.sort]
        if "tsq" in params and query.sort == "featured":
            order = sql.SQL("ts_rank(p.search, to_tsquery('simple', %(tsq)s)) DESC, {}").format(
                order
            )
        page = sql.SQL(
            "SELECT p.product_id FROM products p WHERE {} ORDER BY {}"
            " LIMIT %(limit)s OFFSET %(offset)s"
        ).format(where, order)
        count = sql.SQL("SELECT count(*) FROM products p WHERE {}").format(where)
        params |= {"limit": query.limit, "offset": query.offset}
        async with self._conn() as conn:
            cur = await conn.execute(page, params)
            slugs = [row[0] for row in await cur.fetchall()]
            cur = await conn.execute(count, params)
            row = await cur.fetchone()
            total = int(row[0]) if row else 0
            records = {r.slug: r for r in await _records(conn, slugs, active_only=True)}
        # A product deactivated between the two statements is dropped, not fabricated.
        return [records[s] for s in slugs if s in records], total

    async def best_sellers(self, limit: int) -> list[tuple[ProductRecord, int]]:
        """Active products by units sold over all their variants, most first."""
        async with self._conn() as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT p.product_id, {} AS units FROM products p WHERE p.active"
                    " ORDER BY units DESC, p.product_id LIMIT %s"
                ).format(_UNITS_SOLD),
                (limit,),
            )
            units = {slug: int(n) for slug, n in await cur.fetchall()}
            records = await _records(conn, list(units), active_only=True)
        ranked = sorted(records, key=lambda r: (-units[r.slug], r.slug))
        return [(r, units[r.slug]) for r in ranked]

    async def variant_skus(self, slug: str, *, include_inactive: bool = False) -> list[str] | None:
        """The product's SKUs in display order; None if there is no such product."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT p.active, v.sku FROM products p"
                " LEFT JOIN variants v USING (product_id) WHERE p.product_id = %s"
                " ORDER BY v.position, v.sku",
                (slug,),
            )
            rows = await cur.fetchall()
        if not rows or not (rows[0][0] or include_inactive):
            return None
        return [sku for _, sku in rows if sku is not None]

    async def prices(self, skus: Sequence[str]) -> dict[str, PriceInfo]:
        """Prices of SKUs of active products; other SKUs are absent."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT v.sku, coalesce(v.price_cents, p.price_cents), p.currency, p.name,"
                " v.size, v.colour FROM variants v JOIN products p USING (product_id)"
                " WHERE p.active AND v.sku = ANY(%s::text[])",
                (list(skus),),
            )
            return {
                sku: PriceInfo(int(price), currency, name, size, colour)
                for sku, price, currency, name, size, colour in await cur.fetchall()
            }

    async def available(self, skus: Sequence[str]) -> dict[str, int]:
        """Units available per SKU from the durable counters; unknown SKUs are absent."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT sku, greatest(on_hand - reserved - sold, 0) FROM inventory"
                " WHERE sku = ANY(%s::text[])",
                (list(skus),),
            )
            return {sku: int(n) for sku, n in await cur.fetchall()}

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        """A pooled connection; a storage outage surfaces as :class:`Unavailable`."""
        async with StorageConnection(self.pool, "catalogue") as conn:
            yield conn


async def _insert_product(conn: Conn, p: ProductIn, *, on_conflict: bool = False) -> int:
    cur = await conn.execute(
        sql.SQL(
            "INSERT INTO products (product_id, name, description, category, team, tags,"
            " price_cents, currency, image_url, featured_rank)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) {}"
        ).format(sql.SQL("ON CONFLICT DO NOTHING" if on_conflict else "")),
        (
            p.slug,
            p.name,
            p.description,
            p.category,
            p.team,
            p.tags,
            p.price_cents,
            p.currency,
            p.image_url,
            p.featured_rank,
        ),
    )
    return cur.rowcount


async def _insert_variants(conn: Conn, p: ProductIn, *, on_conflict: bool) -> None:
    vs = p.variants
    await conn.execute(
        sql.SQL(
            "INSERT INTO variants (sku, product_id, size, colour, price_cents, position)"
            " SELECT v.sku, %s, v.size, v.colour, v.price_cents, v.position"
            " FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::int[])"
            " AS v(sku, size, colour, price_cents, position) {}"
        ).format(sql.SQL("ON CONFLICT DO NOTHING" if on_conflict else "")),
        (
            p.slug,
            [v.sku for v in vs],
            [v.size for v in vs],
            [v.colour for v in vs],
            [v.price_cents for v in vs],
            [v.position for v in vs],
        ),
    )


async def _records(conn: Conn, slugs: list[str], *, active_only: bool) -> list[ProductRecord]:
    """Products ``slugs`` with their variants, in no particular order."""
    if not slugs:
        return []
    active = sql.SQL("AND p.active" if active_only else "")
    cur = await conn.execute(
        sql.SQL("SELECT {} FROM products p WHERE p.product_id = ANY(%s::text[]) {}").format(
            _PRODUCT_COLUMNS, active
        ),
        (slugs,),
    )
    products = [dict(zip(_PRODUCT_FIELDS, row, strict=True)) for row in await cur.fetchall()]
    cur = await conn.execute(
        "SELECT v.product_id, v.sku, v.size, v.colour, coalesce(v.price_cents, p.price_cents),"
        " v.position FROM variants v JOIN products p USING (product_id)"
        " WHERE v.product_id = ANY(%s::text[]) ORDER BY v.position, v.sku",
        ([p["slug"] for p in products],),
    )
    variants: dict[str, list[VariantRecord]] = {}
    for pid, sku, size, colour, price, position in await cur.fetchall():
        variants.setdefault(pid, []).append(
            VariantRecord(sku=sku, size=size, colour=colour, price_cents=price, position=position)
        )
    return [ProductRecord(**p, variants=variants.get(p["slug"], [])) for p in products]


def _filters(q: ListQuery) -> tuple[sql.Composable, dict[str, Any]]:
    where: list[sql.Composable] = [sql.SQL("p.active")]
    params: dict[str, Any] = {}
    simple = {
        "category": "p.category = %(category)s",
        "team": "p.team = %(team)s",
        "tag": "p.tags @> ARRAY[%(tag)s]::text[]",
        "min_price_cents": "p.price_cents >= %(min_price_cents)s",
        "max_price_cents": "p.price_cents <= %(max_price_cents)s",
        "size": "EXISTS (SELECT 1 FROM variants v"
        " WHERE v.product_id = p.product_id AND v.size = %(size)s)",
        "colour": "EXISTS (SELECT 1 FROM variants v"
        " WHERE v.product_id = p.product_id AND v.colour = %(colour)s)",
    }
    for field, clause in simple.items():
        value = getattr(q, field)
        if value is not None:
            where.append(sql.SQL(clause))
            params[field] = value
    words = q.search_words()
    if words:
        # Prefix match on every word, so "arg jers" finds "Argentina Home Jersey". The words
        # are letters and digits only, so the tsquery text cannot be malformed.
        where.append(sql.SQL("p.search @@ to_tsquery('simple', %(tsq)s)"))
        params["tsq"] = " & ".join(f"{w}:*" for w in words)
    if q.in_stock:
        # The durable counters, not the availability hash: a filter must run in SQL. They
        # trail the engine by one group commit at most.
        where.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM variants v JOIN inventory i USING (sku)"
                " WHERE v.product_id = p.product_id AND i.on_hand - i.reserved - i.sold > 0)"
            )
        )
    return sql.SQL(" AND ").join(where), params


def _integrity_error(exc: psycopg.IntegrityError, slug: str) -> Exception:
    constraint = exc.diag.constraint_name or ""
    if isinstance(exc, errors.UniqueViolation):
        if constraint == "products_pkey":
            return Conflict(f"product already exists: {slug}")
        if constraint == "variants_unique_option":
            return Conflict("two variants with the same size and colour")
        return Conflict(f"already exists ({constraint})")
    if isinstance(exc, errors.ForeignKeyViolation) and constraint == "products_category_fkey":
        return InvalidInput("category", "no such category")
    return InvalidInput("product", f"refused by the database ({constraint or type(exc).__name__})")
