"""Admin routes for stock and pins (included by the admin app): restock, supplier-sync set,
limits, the CSV import, and moving a hot SKU to a dedicated shard and back. Every change goes
through the admin gate: rate-limited per key, idempotent by ``Idempotency-Key`` (engine
request ids derive from it) and audited with its outcome.
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

import dataclasses
import hashlib
from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from matchday.admin.ports import StockRows
from matchday.admin.stock_import import ImportLimits, ImportRejected, ImportReport, StockImporter
from matchday.domain.errors import UnknownSku
from matchday.inventory.commands import DEFAULT_POLICY, SKU_RE, StockView, fields_of
from matchday.web.admin_session import ADMIN_RESPONSES, AdminCall, AdminGate, StrictBody
from matchday.web.base import router
from matchday.web.context import AdminContext
from matchday.web.schemas import ErrorBody

SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=f"^{SKU_RE.pattern}$")]
IMPORT_PATH = "/stock/import"
IMPORT_MAX_BYTES = ImportLimits().max_bytes
IMPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ADMIN_RESPONSES,
    413: {"model": ErrorBody, "description": f"File over {IMPORT_MAX_BYTES} bytes"},
    415: {"model": ErrorBody, "description": "Body is not text/csv"},
    422: {"model": ErrorBody, "description": "Rejected: every row error listed, none applied"},
}
IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string", "maxLength": IMPORT_MAX_BYTES}}},
    }
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


class RestockIn(StrictBody):
    qty: int = Field(ge=1, le=DEFAULT_POLICY.max_restock, strict=True)


class SetStockIn(StrictBody):
    units: int = Field(ge=0, le=DEFAULT_POLICY.max_on_hand, strict=True)


class LimitsIn(StrictBody):
    """Replaces all three limits: an omitted or null one is removed."""

    per_customer_limit: int | None = Field(None, ge=1, le=DEFAULT_POLICY.max_limit, strict=True)
    low_stock_threshold: int | None = Field(None, ge=0, le=DEFAULT_POLICY.max_limit, strict=True)
    low_stock_order_cap: int | None = Field(None, ge=1, le=DEFAULT_POLICY.max_limit, strict=True)


class PinOut(BaseModel):
    sku: str
    shard: int | None = Field(description="The dedicated shard, or null once unpinned")


class PinsOut(BaseModel):
    pins: dict[str, int]


def routers(gate: AdminGate, ctx: AdminContext, *, pins: Pinning) -> list[APIRouter]:
    """The stock routes, for the admin app to include: stock, the CSV import, pins."""
    return [
        stock_router(gate, ctx.stock, ctx.stock_rows),
        import_router(gate, ctx.importer),
        pins_router(gate, pins),
    ]


def stock_router(gate: AdminGate, stock: StockAdmin, inventory: StockRows) -> APIRouter:
    """A SKU's counters: read them, restock, set what is on hand, set its limits."""
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    Restocker = Annotated[AdminCall, Depends(gate.require("stock.restock"))]
    Setter = Annotated[AdminCall, Depends(gate.require("stock.set"))]
    Limiter = Annotated[AdminCall, Depends(gate.require("stock.limits"))]
    routes = router(responses=ADMIN_RESPONSES, tags=["stock"])

    @routes.get("/stock/{sku}", response_model=StockView)
    async def get_stock(sku: SkuPath, call: Reader) -> StockView:
        """Durable counters from PostgreSQL, as of the engine's last group commit."""
        row = (await inventory.stock_rows([sku])).get(sku)
        if row is None:
            raise UnknownSku(sku)
        return StockView(**row._asdict(), available=row.on_hand - row.reserved - row.sold)

    @routes.post("/stock/{sku}/restock", response_model=StockView)
    async def restock(
        request: Request, sku: SkuPath, body: RestockIn, call: Restocker
    ) -> JSONResponse:
        """Add ``qty`` received units."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, _stock(await stock.restock(rid, sku, body.qty))

        return await gate.run(request, call, body.model_dump(), produce)

    @routes.put("/stock/{sku}", response_model=StockView)
    async def set_stock(
        request: Request, sku: SkuPath, body: SetStockIn, call: Setter
    ) -> JSONResponse:
        """Supplier sync: ``units`` present and unsold. Below what carts hold, the newest
        holds are revoked (listed in ``revoked``)."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, _stock(await stock.set_on_hand(rid, sku, body.units))

        return await gate.run(request, call, body.model_dump(), produce)

    @routes.put("/stock/{sku}/limits", response_model=StockView)
    async def set_limits(
        request: Request, sku: SkuPath, body: LimitsIn, call: Limiter
    ) -> JSONResponse:
        """Replace the SKU's limits; an omitted one is removed. A low-stock order cap needs
        a low-stock threshold (409 otherwise)."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, _stock(await stock.adjust_limits(rid, sku, **body.model_dump()))

        return await gate.run(request, call, body.model_dump(), produce)

    return routes


def import_router(gate: AdminGate, importer: StockImporter) -> APIRouter:
    """``POST /stock/import``: a CSV of restocks and levels, all or nothing."""
    Importer = Annotated[AdminCall, Depends(gate.require("stock.import"))]
    routes = router(responses=IMPORT_RESPONSES, tags=["stock"])

    @routes.post(IMPORT_PATH, response_model=ImportReport, openapi_extra=IMPORT_BODY)
    async def import_stock(request: Request, call: Importer) -> JSONResponse:
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
        # The importer derives its row request ids from the import id: from the admin's
        # own key when one is given, else from the content (same bytes, same import).
        scoped = f"admin:{call.who.key_id}:{header_key}" if header_key else None

        async def produce(rid: str) -> tuple[int, Any]:
            try:
                report = await importer.run(raw, call.who, scoped)
            except ImportRejected as exc:
                # A body, not an exception, so that a replay repeats every row error too.
                return 422, exc.to_dict()
            return 200, dataclasses.asdict(report)

        return await gate.run(request, call, params, produce, target="")

    return routes


def pins_router(gate: AdminGate, pins: Pinning) -> APIRouter:
    """Hot SKUs on dedicated shards: list the pins, pin, unpin."""
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    Pinner = Annotated[AdminCall, Depends(gate.require("pin"))]
    Unpinner = Annotated[AdminCall, Depends(gate.require("unpin"))]
    routes = router(responses=ADMIN_RESPONSES, tags=["pins"])

    @routes.get("/pins", response_model=PinsOut)
    async def list_pins(call: Reader) -> PinsOut:
        return PinsOut(pins=await pins.pins())

    @routes.put("/pins/{sku}", response_model=PinOut)
    async def pin(request: Request, sku: SkuPath, call: Pinner) -> JSONResponse:
        """Serve a hot SKU from a dedicated shard (the least loaded one)."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, PinOut(sku=sku, shard=await pins.pin(sku)).model_dump()

        return await gate.run(request, call, {}, produce)

    @routes.delete("/pins/{sku}", response_model=PinOut)
    async def unpin(request: Request, sku: SkuPath, call: Unpinner) -> JSONResponse:
        """Send the SKU back to its shard on the hash ring."""

        async def produce(rid: str) -> tuple[int, Any]:
            await pins.unpin(sku)
            return 200, PinOut(sku=sku, shard=None).model_dump()

        return await gate.run(request, call, {}, produce)

    return routes


def _stock(view: StockView) -> dict[str, Any]:
    return {**fields_of(view), "revoked": list(view.revoked)}
