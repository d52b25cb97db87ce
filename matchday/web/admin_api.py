"""The admin API over HTTP (mounted at /api/admin): stock, pins, catalogue, the audit log.

``POST /login`` spends an API key and a TOTP code on a session token (admin_session says why
a code cannot ride along on every call); every other call carries that token as a bearer
token. Every mutating call is rate-limited per admin key, accepts an Idempotency-Key (engine
request ids derive from it, so a retry never applies twice) and is written to the audit log
with its outcome, refusals included.

No Ray here: pinning moves a SKU between shard actors, so the caller passes a ``Pinning``
(the Serve wrapper builds one on actors/pinning.py).
"""

# No "from __future__ import annotations": FastAPI must resolve the dependency aliases
# defined inside build(), which string annotations would hide from it.

import dataclasses
import hashlib
import re
from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from matchday.admin.audit import MAX_RECENT, AuditLog
from matchday.admin.auth import AdminAuth
from matchday.admin.records import AuditEntry
from matchday.admin.sealing import TotpSeal
from matchday.admin.stock_import import ImportLimits, ImportRejected, ImportReport, StockImporter
from matchday.catalog.models import CategoryIn, ProductIn, ProductOut, ProductPatch
from matchday.domain.errors import MatchdayError, UnknownSku
from matchday.inventory.commands import DEFAULT_POLICY, SKU_RE, StockView, fields_of
from matchday.inventory.routing import Router
from matchday.storage.admin_repo import AdminRepository
from matchday.storage.inventory_repo import InventoryRepository
from matchday.web import (
    admin_channels,
    admin_drops,
    admin_polls,
    admin_refunds,
    admin_reports,
    admin_suppliers,
)
from matchday.web.admin_session import AdminCall, AdminGate, AdminSessions, client_of
from matchday.web.base import BodyLimit, make_app
from matchday.web.context import ShopContext
from matchday.web.schemas import ErrorBody

SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=f"^{SKU_RE.pattern}$")]
SlugPath = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9-]*$")]
IMPORT_PATH = "/stock/import"
_KEY_ID_RE = re.compile(r"mdk_([0-9a-f]{16})_")
IMPORT_MAX_BYTES = ImportLimits().max_bytes

ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No, expired or forged session; or key revoked"},
    403: {"model": ErrorBody, "description": "API key locked after repeated wrong codes"},
    404: {"model": ErrorBody, "description": "No such SKU or product"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    422: {"model": ErrorBody, "description": "Invalid input; nothing was changed"},
}
IMPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ADMIN_RESPONSES,
    413: {"model": ErrorBody, "description": f"File over {IMPORT_MAX_BYTES} bytes"},
    415: {"model": ErrorBody, "description": "Body is not text/csv"},
    422: {"model": ErrorBody, "description": "Rejected: every row error listed, none applied"},
}


class Pinning(Protocol):
    """Moves a hot SKU onto a dedicated shard and back, while traffic flows.

    Raises UnknownSku for a SKU without inventory, InvalidInput when no dedicated shard
    exists."""

    async def pin(self, sku: str) -> int:
        """Pin ``sku``; the id of the shard that owns it now."""
        ...

    async def unpin(self, sku: str) -> None: ...

    async def pins(self) -> dict[str, int]: ...


@runtime_checkable
class StockAdmin(Protocol):
    """The engine mutations this API sends (``InventoryClient`` provides them)."""

    async def restock(self, request_id: str, sku: str, qty: int) -> StockView: ...

    async def set_on_hand(self, request_id: str, sku: str, units: int) -> StockView: ...

    async def adjust_limits(
        self,
        request_id: str,
        sku: str,
        per_customer_limit: int | None = None,
        low_stock_threshold: int | None = None,
        low_stock_order_cap: int | None = None,
    ) -> StockView: ...


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # JSON bodies: true is not 1


class LoginIn(_In):
    # Loose bounds on purpose: a wrong-looking key or code is a refused login (401, audited,
    # counted towards the key's lockout), not a schema error.
    api_key: str = Field(min_length=1, max_length=128)
    totp_code: str = Field(min_length=1, max_length=16)


class LoginOut(BaseModel):
    session_token: str = Field(description="Send as 'Authorization: Bearer <session_token>'")
    expires_at: int
    key_id: str


class RestockIn(_In):
    qty: int = Field(ge=1, le=DEFAULT_POLICY.max_restock, strict=True)


class SetStockIn(_In):
    units: int = Field(ge=0, le=DEFAULT_POLICY.max_on_hand, strict=True)


class LimitsIn(_In):
    """Replaces all three limits: an omitted or null one is removed."""

    per_customer_limit: int | None = Field(None, ge=1, le=DEFAULT_POLICY.max_limit, strict=True)
    low_stock_threshold: int | None = Field(None, ge=0, le=DEFAULT_POLICY.max_limit, strict=True)
    low_stock_order_cap: int | None = Field(None, ge=1, le=DEFAULT_POLICY.max_limit, strict=True)


class PinOut(BaseModel):
    sku: str
    shard: int | None = Field(description="The dedicated shard, or null once unpinned")


class PinsOut(BaseModel):
    pins: dict[str, int]


class DeactivatedOut(BaseModel):
    slug: str
    active: bool


class AuditOut(BaseModel):
    entries: list[AuditEntry]


def build(ctx: ShopContext, *, pins: Pinning, router: Router) -> FastAPI:
    stock = ctx.stock
    if not isinstance(stock, StockAdmin):
        raise TypeError("the admin API needs the inventory engine (ctx.stock)")
    admin_repo = AdminRepository(ctx.pool)
    inventory = InventoryRepository(ctx.pool)
    auth = AdminAuth(admin_repo, seal=TotpSeal(ctx.settings.secret_key.get_secret_value()))
    audit = AuditLog(admin_repo)
    sessions = AdminSessions(ctx.settings.secret_key.get_secret_value(), admin_repo)
    importer = StockImporter(admin_repo, stock, ctx.settings.policy())
    app = make_app(
        "matchday admin",
        "Stock, pins and the catalogue for operators. POST /login with an API key and a TOTP "
        "code, then send 'Authorization: Bearer <session_token>'. Every change is audited.",
        ready=ctx.ready,
        max_body_bytes=max(IMPORT_MAX_BYTES, ctx.settings.max_body_bytes),
    )
    app.add_middleware(_SmallBodiesExceptImport, limit=ctx.settings.max_body_bytes)
    gate = AdminGate(sessions, audit, ctx.limiter, ctx.idempotency)
    admin_refunds.include(app, gate, ctx)
    admin_reports.include(app, gate, ctx)
    admin_polls.include(app, gate, ctx)
    admin_suppliers.include(app, gate, ctx)
    admin_channels.include(app, gate, ctx)
    admin_drops.include(app, gate, ctx)

    Reader = Annotated[AdminCall, Depends(gate.require(None))]

    @app.post("/login", response_model=LoginOut, responses=ADMIN_RESPONSES, tags=["session"])
    async def login(request: Request, body: LoginIn) -> LoginOut:
        """Spend an API key and a fresh TOTP code on a session token (~15 minutes).

        A code is accepted once: a second login within the same 30 s needs the next code.
        Idempotency-Key is ignored here: a replayed answer would be a stored credential."""
        client = client_of(request)
        await ctx.limiter.check(f"admin-login:{client}")
        named = _KEY_ID_RE.match(body.api_key)  # the public part: it says which key was tried
        key_id = named.group(1) if named else ""
        try:
            who = await auth.authenticate(body.api_key, body.totp_code, client)
        except MatchdayError as exc:
            await gate.record(None, "login", f"key:{key_id}", {}, exc.code, client=client)
            raise
        assert who.key_id is not None  # authenticate() always names the key
        token, expires_at = sessions.issue(who.key_id)
        await gate.record(who, "login", f"key:{who.key_id}", {"expires_at": expires_at}, "ok")
        return LoginOut(session_token=token, expires_at=expires_at, key_id=who.key_id)

    # -- stock -------------------------------------------------------------------------------

    @app.get("/stock/{sku}", response_model=StockView, responses=ADMIN_RESPONSES, tags=["stock"])
    async def get_stock(sku: SkuPath, call: Reader) -> StockView:
        """Durable counters from PostgreSQL, as of the engine's last group commit."""
        row = (await inventory.stock_rows([sku])).get(sku)
        if row is None:
            raise UnknownSku(sku)
        return StockView(**row._asdict(), available=row.on_hand - row.reserved - row.sold)

    @app.post(
        "/stock/{sku}/restock",
        response_model=StockView,
        responses=ADMIN_RESPONSES,
        tags=["stock"],
    )
    async def restock(
        request: Request,
        sku: SkuPath,
        body: RestockIn,
        call: Annotated[AdminCall, Depends(gate.require("stock.restock"))],
    ) -> JSONResponse:
        """Add ``qty`` received units."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, _stock(await stock.restock(rid, sku, body.qty))

        return await gate.run(request, call, body.model_dump(), produce)

    @app.put("/stock/{sku}", response_model=StockView, responses=ADMIN_RESPONSES, tags=["stock"])
    async def set_stock(
        request: Request,
        sku: SkuPath,
        body: SetStockIn,
        call: Annotated[AdminCall, Depends(gate.require("stock.set"))],
    ) -> JSONResponse:
        """Supplier sync: ``units`` present and unsold. Below what carts hold, the newest
        holds are revoked (listed in ``revoked``)."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, _stock(await stock.set_on_hand(rid, sku, body.units))

        return await gate.run(request, call, body.model_dump(), produce)

    @app.put(
        "/stock/{sku}/limits",
        response_model=StockView,
        responses=ADMIN_RESPONSES,
        tags=["stock"],
    )
    async def set_limits(
        request: Request,
        sku: SkuPath,
        body: LimitsIn,
        call: Annotated[AdminCall, Depends(gate.require("stock.limits"))],
    ) -> JSONResponse:
        """Replace the SKU's limits; an omitted one is removed. A low-stock order cap needs
        a low-stock threshold (409 otherwise)."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, _stock(await stock.adjust_limits(rid, sku, **body.model_dump()))

        return await gate.run(request, call, body.model_dump(), produce)

    @app.post(
        IMPORT_PATH,
        response_model=ImportReport,
        responses=IMPORT_RESPONSES,
        tags=["stock"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {"schema": {"type": "string", "maxLength": IMPORT_MAX_BYTES}}
                },
            }
        },
    )
    async def import_stock(
        request: Request, call: Annotated[AdminCall, Depends(gate.require("stock.import"))]
    ) -> JSONResponse:
        """A CSV ``sku,action,quantity`` (action ``restock`` or ``set``), validated all or
        nothing. Re-sending the same file (or the same Idempotency-Key) applies nothing
        twice; the report says which rows the engine refused, if any."""
        raw = await request.body()
        params = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "text/csv":
            await gate.record(call.who, call.action, "", params, "unsupported_media_type")
            raise HTTPException(415, "send the file with Content-Type: text/csv")
        header_key = request.headers.get("idempotency-key")

        async def produce(rid: str) -> tuple[int, Any]:
            # The importer derives its row request ids from the import id: from the admin's
            # own key when one is given, else from the content (same bytes, same import).
            scoped = f"admin:{call.who.key_id}:{header_key}" if header_key else None
            try:
                report = await importer.run(raw, call.who, scoped)
            except ImportRejected as exc:
                # A body, not an exception, so that a replay repeats every row error too.
                return 422, exc.to_dict()
            return 200, dataclasses.asdict(report)

        return await gate.run(request, call, params, produce, target="")

    # -- pins --------------------------------------------------------------------------------

    @app.get("/pins", response_model=PinsOut, responses=ADMIN_RESPONSES, tags=["pins"])
    async def list_pins(call: Reader) -> PinsOut:
        return PinsOut(pins=await pins.pins())

    @app.put("/pins/{sku}", response_model=PinOut, responses=ADMIN_RESPONSES, tags=["pins"])
    async def pin(
        request: Request, sku: SkuPath, call: Annotated[AdminCall, Depends(gate.require("pin"))]
    ) -> JSONResponse:
        """Serve a hot SKU from a dedicated shard (the least loaded one)."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, {"sku": sku, "shard": await pins.pin(sku)}

        return await gate.run(request, call, {}, produce)

    @app.delete("/pins/{sku}", response_model=PinOut, responses=ADMIN_RESPONSES, tags=["pins"])
    async def unpin(
        request: Request, sku: SkuPath, call: Annotated[AdminCall, Depends(gate.require("unpin"))]
    ) -> JSONResponse:
        """Send the SKU back to its shard on the hash ring."""

        async def produce(rid: str) -> tuple[int, Any]:
            await pins.unpin(sku)
            return 200, {"sku": sku, "shard": None}

        return await gate.run(request, call, {}, produce)

    # -- catalogue ---------------------------------------------------------------------------

    @app.post(
        "/categories",
        status_code=201,
        response_model=CategoryIn,
        responses=ADMIN_RESPONSES,
        tags=["catalogue"],
    )
    async def put_category(
        request: Request,
        body: CategoryIn,
        call: Annotated[AdminCall, Depends(gate.require("category.put"))],
    ) -> JSONResponse:
        """Create a category, or rename and reorder the one with this slug."""

        async def produce(rid: str) -> tuple[int, Any]:
            await ctx.catalog.put_category(body)
            return 201, body.model_dump()

        return await gate.run(request, call, body.model_dump(), produce, target=body.slug)

    @app.post(
        "/products",
        status_code=201,
        response_model=ProductOut,
        responses=ADMIN_RESPONSES,
        tags=["catalogue"],
    )
    async def create_product(
        request: Request,
        body: ProductIn,
        call: Annotated[AdminCall, Depends(gate.require("product.create"))],
    ) -> JSONResponse:
        """A product with its variants; each variant's SKU gets its inventory row."""

        async def produce(rid: str) -> tuple[int, Any]:
            product = await ctx.catalog.create_product(body, router)
            return 201, product.model_dump(mode="json")

        return await gate.run(request, call, body.model_dump(), produce, target=body.slug)

    @app.patch(
        "/products/{slug}",
        response_model=ProductOut,
        responses=ADMIN_RESPONSES,
        tags=["catalogue"],
    )
    async def update_product(
        request: Request,
        slug: SlugPath,
        body: ProductPatch,
        call: Annotated[AdminCall, Depends(gate.require("product.update"))],
    ) -> JSONResponse:
        """Change the fields given; the others stay."""
        patch = body.model_dump(exclude_unset=True)

        async def produce(rid: str) -> tuple[int, Any]:
            product = await ctx.catalog.update_product(slug, body)
            return 200, product.model_dump(mode="json")

        return await gate.run(request, call, patch, produce)

    @app.delete(
        "/products/{slug}",
        response_model=DeactivatedOut,
        responses=ADMIN_RESPONSES,
        tags=["catalogue"],
    )
    async def deactivate_product(
        request: Request,
        slug: SlugPath,
        call: Annotated[AdminCall, Depends(gate.require("product.deactivate"))],
    ) -> JSONResponse:
        """Hide the product everywhere; its SKUs, stock and order history stay."""

        async def produce(rid: str) -> tuple[int, Any]:
            await ctx.catalog.deactivate_product(slug)
            return 200, {"slug": slug, "active": False}

        return await gate.run(request, call, {}, produce)

    # -- audit -------------------------------------------------------------------------------

    @app.get("/audit", response_model=AuditOut, responses=ADMIN_RESPONSES, tags=["audit"])
    async def audit_log(
        call: Reader,
        limit: Annotated[int, Query(ge=1, le=MAX_RECENT)] = 50,
        action: Annotated[
            str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
        ] = None,
    ) -> AuditOut:
        """The newest entries first, optionally of one action only."""
        entries = await audit.recent(limit, action)
        return AuditOut(entries=entries)

    return app


class _SmallBodiesExceptImport:
    """The shop-wide body limit on every route but the CSV import and a supplier's bulk
    sync, which may carry up to 1 MiB (the app's own, outer limit): a JSON body never needs
    that much."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.small = BodyLimit(app, limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_import = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and (
                str(scope["path"]).endswith(IMPORT_PATH)
                or admin_suppliers.is_sync_upload(str(scope["path"]))
            )
        )
        await (self.app if is_import else self.small)(scope, receive, send)


def _stock(view: StockView) -> dict[str, Any]:
    return {**fields_of(view), "revoked": list(view.revoked)}
