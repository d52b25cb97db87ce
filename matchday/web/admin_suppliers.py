"""Admin routes for supplier connectors (included by the admin app, ADR 0025).

Behind the admin session, rate limit and audit of every other admin route (``gate``):

- ``GET /suppliers``, ``GET /suppliers/{id}``: suppliers (never a secret).
- ``POST /suppliers`` (``SupplierIn``): 201 with the supplier and its signing secret.
- ``POST /suppliers/{id}/secret``: a new secret; the previous one verifies for a grace period.
- ``PATCH /suppliers/{id}`` (``SupplierPatch``): name, feed, schedule, bound, active.
- ``GET|POST /suppliers/{id}/mappings``, ``DELETE /suppliers/{id}/mappings/{supplier_sku}``.
- ``POST /suppliers/{id}/syncs`` (a ``text/csv`` or ``application/json`` feed): a bulk sync,
  queued (202) until the shop is quiet; ``GET /suppliers/{id}/syncs`` the newest.
- ``GET /syncs/{sync_id}`` (progress, report), ``POST /syncs/{sync_id}/force|cancel``.

A secret is in one answer only: the two routes that issue one are audited without it and
never go through the idempotency store (a stored answer would be a stored credential). An
Idempotency-Key sent with them is remembered as a hash with the secret it issued, so a
retry after a lost answer gets that secret again rather than a second rotation.
"""

# No "from __future__ import annotations": FastAPI resolves the route's annotations.

import re
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from matchday.domain.errors import MatchdayError
from matchday.suppliers.admin import Issued, MappingsIn, SupplierIn, SupplierPatch
from matchday.suppliers.config import SupplierServices
from matchday.suppliers.model import FeedRejected
from matchday.suppliers.model import Mapping as SkuMapping
from matchday.web.admin_session import AdminCall, AdminGate
from matchday.web.base import body_of, router
from matchday.web.context import EngineContext
from matchday.web.errors import error_response
from matchday.web.schemas import ErrorBody
from matchday.web.suppliers_api import SupplierPath

_SYNC_UPLOAD = re.compile(r"/suppliers/[a-z0-9-]{1,32}/syncs$")
SYNC_MEDIA = {"text/csv": "csv", "application/json": "json"}
SyncPath = Annotated[str, Path(min_length=6, max_length=40, pattern=r"^sync-[0-9a-f]{1,32}$")]
SupplierSkuPath = Annotated[str, Path(min_length=1, max_length=64)]
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid admin session"},
    404: {"model": ErrorBody, "description": "No such supplier, mapping or sync"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    422: {"model": ErrorBody, "description": "Invalid input; nothing was changed"},
}
SYNC_RESPONSES: dict[int | str, dict[str, Any]] = {
    **RESPONSES,
    415: {"model": ErrorBody, "description": "Body is neither text/csv nor application/json"},
    422: {
        "model": ErrorBody,
        "description": "Malformed feed: every problem listed, nothing queued",
    },
}


class SupplierOut(BaseModel):
    """A supplier, never its secret."""

    supplier_id: str
    name: str
    feed_url: str | None
    feed_format: str
    pull_every_s: int | None
    max_units: int
    active: bool
    created_at: float
    updated_at: float
    etag: str | None = Field(description="of the feed's last pull")
    last_modified: str | None = Field(description="of the feed's last pull")
    last_pulled_at: float | None


class SuppliersOut(BaseModel):
    suppliers: list[SupplierOut]


class SupplierIssued(SupplierOut):
    """A supplier and the signing secret it was just given: in this answer only."""

    secret: str
    previous_valid_until: float | None = Field(
        description="the previous secret verifies until then (a rotation)"
    )


class SyncOut(BaseModel):
    """A bulk sync: its progress and, once it ended, its report."""

    sync_id: str
    supplier_id: str
    source: str = Field(description="pull or upload")
    status: str = Field(description="queued, running, done, cancelled or rejected")
    forced: bool
    content_sha256: str
    as_of: float
    total_lines: int
    cursor: int
    applied: int
    unchanged: int
    rejected: int
    queued_by: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    report: dict[str, Any] | None = Field(description="counts, reasons and drift, once ended")
    progress: float = Field(description="the share of lines with an outcome")


class SyncsOut(BaseModel):
    syncs: list[SyncOut]


class MappingOut(BaseModel):
    supplier_sku: str
    sku: str
    level_as_of: float | None = Field(description="As-of time of the last level applied")


class MappingsOut(BaseModel):
    mappings: list[MappingOut]


class MappingDeleted(BaseModel):
    supplier_id: str
    supplier_sku: str
    deleted: bool


def routers(gate: AdminGate, ctx: EngineContext) -> list[APIRouter]:
    """The supplier routes, for the admin app to include: suppliers, mappings, syncs."""
    services = ctx.suppliers
    return [
        suppliers_router(gate, services),
        mappings_router(gate, services),
        syncs_router(gate, services),
    ]


def suppliers_router(gate: AdminGate, services: SupplierServices) -> APIRouter:
    """Suppliers: list, create, read, change, and rotate a signing secret."""
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    Creator = Annotated[AdminCall, Depends(gate.require("supplier.create"))]
    Updater = Annotated[AdminCall, Depends(gate.require("supplier.update"))]
    Rotator = Annotated[AdminCall, Depends(gate.require("supplier.rotate"))]
    suppliers = router(responses=RESPONSES, tags=["suppliers"])

    @suppliers.get("/suppliers", response_model=SuppliersOut)
    async def list_suppliers(call: Reader) -> SuppliersOut:
        """Every supplier, without secrets."""
        found = await services.admin.list()
        return SuppliersOut(suppliers=[SupplierOut.model_validate(s.public()) for s in found])

    @suppliers.post("/suppliers", status_code=201, response_model=SupplierIssued)
    async def create_supplier(request: Request, body: SupplierIn, call: Creator) -> JSONResponse:
        """A supplier and its signing secret, shown in this answer only."""
        make = partial(services.admin.create, body)
        return await _issue(gate, request, call, body.model_dump(), make)

    @suppliers.get("/suppliers/{supplier}", response_model=SupplierOut)
    async def get_supplier(supplier: SupplierPath, call: Reader) -> SupplierOut:
        return SupplierOut.model_validate((await services.admin.get(supplier)).public())

    @suppliers.patch("/suppliers/{supplier}", response_model=SupplierOut)
    async def update_supplier(
        request: Request, supplier: SupplierPath, body: SupplierPatch, call: Updater
    ) -> JSONResponse:
        """Change the fields given; ``null`` removes the feed URL or the schedule."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, body_of(SupplierOut, (await services.admin.update(supplier, body)).public())

        return await gate.run(request, call, body.model_dump(exclude_unset=True), produce)

    @suppliers.post("/suppliers/{supplier}/secret", status_code=201, response_model=SupplierIssued)
    async def rotate_secret(
        request: Request, supplier: SupplierPath, call: Rotator
    ) -> JSONResponse:
        """A new signing secret; the previous one keeps verifying until
        ``previous_valid_until``, so the supplier can switch without dropping a message."""
        return await _issue(gate, request, call, {}, partial(services.admin.rotate, supplier))

    return suppliers


def mappings_router(gate: AdminGate, services: SupplierServices) -> APIRouter:
    """Which of the shop's SKUs each supplier SKU is: list, map (all or none), unmap."""
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    Mapper = Annotated[AdminCall, Depends(gate.require("supplier.map"))]
    Unmapper = Annotated[AdminCall, Depends(gate.require("supplier.unmap"))]
    mappings = router(responses=RESPONSES, tags=["suppliers"])

    @mappings.get("/suppliers/{supplier}/mappings", response_model=MappingsOut)
    async def list_mappings(supplier: SupplierPath, call: Reader) -> MappingsOut:
        return _mappings(await services.admin.mappings(supplier))

    @mappings.post("/suppliers/{supplier}/mappings", response_model=MappingsOut)
    async def put_mappings(
        request: Request, supplier: SupplierPath, body: MappingsIn, call: Mapper
    ) -> JSONResponse:
        """Map supplier SKUs to SKUs, all or none (every SKU must exist)."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, _mappings(await services.admin.map(supplier, body)).model_dump()

        return await gate.run(request, call, body.model_dump(), produce)

    @mappings.delete("/suppliers/{supplier}/mappings/{supplier_sku}", response_model=MappingDeleted)
    async def delete_mapping(
        request: Request, supplier: SupplierPath, supplier_sku: SupplierSkuPath, call: Unmapper
    ) -> JSONResponse:
        async def produce(rid: str) -> tuple[int, Any]:
            await services.admin.unmap(supplier, supplier_sku)
            deleted = MappingDeleted(supplier_id=supplier, supplier_sku=supplier_sku, deleted=True)
            return 200, deleted.model_dump()

        return await gate.run(request, call, {}, produce)

    return mappings


def syncs_router(gate: AdminGate, services: SupplierServices) -> APIRouter:
    """Bulk syncs: queue a feed, list a supplier's, read, force or cancel one."""
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    Syncer = Annotated[AdminCall, Depends(gate.require("supplier.sync"))]
    Forcer = Annotated[AdminCall, Depends(gate.require("supplier.sync.force"))]
    Canceller = Annotated[AdminCall, Depends(gate.require("supplier.sync.cancel"))]
    syncs = router(tags=["syncs"])

    @syncs.post(
        "/suppliers/{supplier}/syncs",
        status_code=202,
        responses={
            **SYNC_RESPONSES,
            200: {
                "model": SyncOut,
                "description": "The same feed is already queued or running: that sync",
            },
        },
        response_model=SyncOut,
    )
    async def queue_sync(request: Request, supplier: SupplierPath, call: Syncer) -> JSONResponse:
        """Queue a feed (``sku,level`` or ``sku,delta`` CSV, or JSON lines) as a bulk sync.
        It runs when the shop is quiet, in chunks; a small one runs at once."""
        return await _queue_sync(gate, services, request, supplier, call)

    @syncs.get("/suppliers/{supplier}/syncs", responses=RESPONSES, response_model=SyncsOut)
    async def list_syncs(
        supplier: SupplierPath, call: Reader, limit: Annotated[int, Query(ge=1, le=200)] = 20
    ) -> SyncsOut:
        recent = await services.bulk.syncs.recent(supplier, limit)
        return SyncsOut(syncs=[SyncOut.model_validate(s.public()) for s in recent])

    @syncs.get("/syncs/{sync_id}", responses=RESPONSES, response_model=SyncOut)
    async def get_sync(sync_id: SyncPath, call: Reader) -> SyncOut:
        """A sync's progress and, once it ended, its report (counts, reasons, drift)."""
        return SyncOut.model_validate((await services.bulk.get(sync_id)).public())

    @syncs.post("/syncs/{sync_id}/force", responses=RESPONSES, response_model=SyncOut)
    async def force_sync(request: Request, sync_id: SyncPath, call: Forcer) -> JSONResponse:
        """Run it now, whatever the load."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, body_of(SyncOut, (await services.bulk.force(sync_id)).public())

        return await gate.run(request, call, {}, produce)

    @syncs.post("/syncs/{sync_id}/cancel", responses=RESPONSES, response_model=SyncOut)
    async def cancel_sync(request: Request, sync_id: SyncPath, call: Canceller) -> JSONResponse:
        """Stop it after the chunk in flight; what was applied stays and is reported."""

        async def produce(rid: str) -> tuple[int, Any]:
            return 200, body_of(SyncOut, (await services.bulk.cancel(sync_id)).public())

        return await gate.run(request, call, {}, produce)

    return syncs


async def _issue(
    gate: AdminGate,
    request: Request,
    call: AdminCall,
    params: dict[str, Any],
    make: Callable[[str | None], Awaitable[Issued]],
) -> JSONResponse:
    """Run ``make(idempotency key)`` and audit it, the secret left out of both."""
    key = request.headers.get("idempotency-key")
    try:
        issued = await make(key)
    except MatchdayError as exc:
        await gate.record(call.who, call.action, call.target, params, exc.code)
        raise
    await gate.record(call.who, call.action, issued.supplier.supplier_id, params, "ok")
    headers = {"Cache-Control": "no-store"}
    return JSONResponse(body_of(SupplierIssued, issued.public()), status_code=201, headers=headers)


async def _queue_sync(
    gate: AdminGate,
    services: SupplierServices,
    request: Request,
    supplier: str,
    call: AdminCall,
) -> JSONResponse:
    """The upload's format from its Content-Type, the feed queued, the outcome audited."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = SYNC_MEDIA.get(media)
    if fmt is None:
        return error_response(415, "unsupported_media_type", "send text/csv or application/json")
    data = await request.body()
    params: dict[str, Any] = {"format": fmt, "bytes": len(data)}
    try:
        sync, created = await services.bulk.queue(supplier, data, fmt, queued_by=_who(call))
    except FeedRejected as exc:
        await gate.record(call.who, call.action, call.target, params, exc.code)
        return error_response(422, exc.code, exc.message, errors=exc.records())
    except MatchdayError as exc:
        await gate.record(call.who, call.action, call.target, params, exc.code)
        raise
    params = {**params, "lines": sync.total_lines, "new": created}
    await gate.record(call.who, call.action, sync.sync_id, params, "ok")
    return JSONResponse(body_of(SyncOut, sync.public()), status_code=202 if created else 200)


def is_sync_upload(path: str) -> bool:
    """A bulk sync's upload, which may be as large as the admin app's outer body limit (a
    larger feed is queued from the CLI, ``matchday suppliers sync``)."""
    return _SYNC_UPLOAD.search(path) is not None


def _mappings(found: Mapping[str, SkuMapping]) -> MappingsOut:
    return MappingsOut(
        mappings=[
            MappingOut(supplier_sku=m.supplier_sku, sku=m.sku, level_as_of=m.level_as_of)
            for m in found.values()
        ]
    )


def _who(call: AdminCall) -> str:
    return f"admin:{call.who.key_id or '-'}"
