"""The admin API over HTTP (mounted at /api/admin): login, the audit log, and the route groups
of admin_stock (stock, pins), admin_catalog and the other admin_* modules.

``POST /login`` spends an API key and a TOTP code on a session token (admin_session says why
a code cannot ride along on every call); every other call carries that token as a bearer
token. Every mutating call is rate-limited per admin key, accepts an Idempotency-Key (engine
request ids derive from it, so a retry never applies twice) and is written to the audit log
with its outcome, refusals included.

No Ray here: pinning moves a SKU between shard actors, so the caller passes a ``Pinning``
(the Serve wrapper builds one on actors/pinning.py).
"""

# No "from __future__ import annotations": FastAPI must resolve the dependency aliases
# defined inside the router factories, which string annotations would hide from it.

import re
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from matchday.admin.audit import MAX_RECENT
from matchday.admin.records import AuditEntry
from matchday.domain.errors import MatchdayError
from matchday.inventory.routing import Router
from matchday.web import (
    admin_catalog,
    admin_channels,
    admin_drops,
    admin_polls,
    admin_refunds,
    admin_reports,
    admin_stock,
    admin_suppliers,
)
from matchday.web.admin_session import (
    ADMIN_RESPONSES,
    AdminCall,
    AdminGate,
    StrictBody,
    client_of,
)
from matchday.web.admin_stock import IMPORT_MAX_BYTES, IMPORT_PATH, Pinning
from matchday.web.base import BodyLimit, include, make_app
from matchday.web.base import router as api_router
from matchday.web.context import AdminContext

_KEY_ID_RE = re.compile(r"mdk_([0-9a-f]{16})_")


class LoginIn(StrictBody):
    # Loose bounds on purpose: a wrong-looking key or code is a refused login (401, audited,
    # counted towards the key's lockout), not a schema error.
    api_key: str = Field(min_length=1, max_length=128)
    totp_code: str = Field(min_length=1, max_length=16)


class LoginOut(BaseModel):
    session_token: str = Field(description="Send as 'Authorization: Bearer <session_token>'")
    expires_at: int
    key_id: str


class AuditOut(BaseModel):
    entries: list[AuditEntry]


def build(ctx: AdminContext, *, pins: Pinning, router: Router) -> FastAPI:
    app = make_app(
        "matchday admin",
        "Stock, pins and the catalogue for operators. POST /login with an API key and a TOTP "
        "code, then send 'Authorization: Bearer <session_token>'. Every change is audited.",
        ready=ctx.ready,
        max_body_bytes=max(IMPORT_MAX_BYTES, ctx.settings.max_body_bytes),
    )
    app.add_middleware(_SmallBodiesExceptImport, limit=ctx.settings.max_body_bytes)
    gate = AdminGate(
        sessions=ctx.sessions, audit=ctx.audit, limiter=ctx.limiter, idempotency=ctx.idempotency
    )
    include(
        app,
        admin_refunds.router(gate, ctx),
        admin_reports.router(gate, ctx),
        admin_polls.router(gate, ctx),
        *admin_suppliers.routers(gate, ctx),
        *admin_channels.routers(gate, ctx),
        admin_drops.router(gate, ctx),
        login_router(gate, ctx),
        *admin_stock.routers(gate, ctx, pins=pins),
        *admin_catalog.routers(gate, ctx, router=router),
        audit_router(gate, ctx),
    )
    return app


def login_router(gate: AdminGate, ctx: AdminContext) -> APIRouter:
    """``POST /login``: an API key and a TOTP code for a session token."""
    routes = api_router(responses=ADMIN_RESPONSES, tags=["session"])

    @routes.post("/login", response_model=LoginOut)
    async def login(request: Request, body: LoginIn) -> LoginOut:
        """Spend an API key and a fresh TOTP code on a session token (~15 minutes).

        A code is accepted once: a second login within the same 30 s needs the next code.
        Idempotency-Key is ignored here: a replayed answer would be a stored credential."""
        client = client_of(request)
        await ctx.limiter.check(f"admin-login:{client}")
        named = _KEY_ID_RE.match(body.api_key)  # the public part: it says which key was tried
        key_id = named.group(1) if named else ""
        try:
            who = await ctx.auth.authenticate(body.api_key, body.totp_code, client)
        except MatchdayError as exc:
            await gate.record(None, "login", f"key:{key_id}", {}, exc.code, client=client)
            raise
        assert who.key_id is not None  # authenticate() always names the key
        session = ctx.sessions.issue(who.key_id)
        params = {"expires_at": session.expires_at}
        await gate.record(who, "login", f"key:{who.key_id}", params, "ok")
        return LoginOut(
            session_token=session.token, expires_at=session.expires_at, key_id=who.key_id
        )

    return routes


def audit_router(gate: AdminGate, ctx: AdminContext) -> APIRouter:
    """``GET /audit``: the audit log, newest first."""
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    routes = api_router(responses=ADMIN_RESPONSES, tags=["audit"])

    @routes.get("/audit", response_model=AuditOut)
    async def audit_log(
        call: Reader,
        limit: Annotated[int, Query(ge=1, le=MAX_RECENT)] = 50,
        action: Annotated[
            str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
        ] = None,
    ) -> AuditOut:
        """The newest entries first, optionally of one action only."""
        return AuditOut(entries=await ctx.audit.recent(limit, action))

    return routes


class _SmallBodiesExceptImport:
    """The shop-wide body limit on every route but the CSV import and a supplier's bulk
    sync, which may carry up to 1 MiB (the app's own, outer limit): a JSON body never needs
    that much."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.small = BodyLimit(app, limit=limit)

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
