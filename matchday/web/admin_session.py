"""Admin sessions: what an API key plus a TOTP code buy, for a quarter of an hour.

A TOTP code is accepted once per 30 s step (replay protection, ADR 0005), so it cannot ride
along on every admin request: a second request within the same step would be refused as a
replay. ``POST /login`` therefore spends the code once and hands back a session token,

    mds1.<key_id>.<expires_at>.<hmac-sha256 hex>

signed with a key derived from the shop's ``secret_key``. Checking a token is one HMAC, one
clock read and one small PostgreSQL read (is the key still unrevoked?): admin traffic is low,
and revoking a key must end its sessions at once, not when they expire.

``AdminGate`` is what every admin route goes through: the session check, the per-key rate
limit, the Idempotency-Key, and the audit entry with the call's outcome.
"""

# No "from __future__ import annotations": FastAPI reads the signature of the dependency
# AdminGate.require() builds, and must see its annotations as objects.

import dataclasses
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NamedTuple

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from matchday.admin.audit import AuditLog
from matchday.admin.ports import KeyStore
from matchday.admin.records import AdminIdentity
from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import MatchdayError, Unauthorized
from matchday.web.base import idempotent
from matchday.web.idempotency import IdempotencyStore
from matchday.web.ratelimit import RateLimiter
from matchday.web.schemas import ErrorBody

log = logging.getLogger(__name__)

# Long enough for a restock session at a warehouse terminal, short enough that a token
# copied from a terminal's scrollback is soon worthless. Revocation ends it sooner.
SESSION_TTL_S = 15 * 60
# What every admin route may answer besides its own success (the OpenAPI document's).
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No, expired or forged session; or key revoked"},
    403: {"model": ErrorBody, "description": "API key locked after repeated wrong codes"},
    404: {"model": ErrorBody, "description": "No such SKU or product"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    422: {"model": ErrorBody, "description": "Invalid input; nothing was changed"},
}


class StrictBody(BaseModel):
    """An admin request body: unknown fields refused, and no coercion (JSON true is not 1)."""

    model_config = ConfigDict(extra="forbid", strict=True)


SESSION_FORMAT = "mds1"  # the version tag every session token starts with
_TOKEN_RE = re.compile(r"mds1\.([0-9a-f]{16})\.([0-9]{1,12})\.([0-9a-f]{64})")
# Domain separation: the shopper tokens are MACs under the same secret_key, so admin
# sessions are signed with a key derived from it, never with the secret itself.
_KEY_LABEL = b"matchday admin session v1"


class Session(NamedTuple):
    """A session just issued: the bearer token and when it stops working (epoch s)."""

    token: str
    expires_at: int


class Claims(NamedTuple):
    """What a genuine, unexpired session token says: whose key, and until when."""

    key_id: str
    expires_at: int


class AdminSessions:
    def __init__(
        self,
        secret_key: str,
        repo: KeyStore,
        *,
        ttl_s: int = SESSION_TTL_S,
        clock: Clock | None = None,
    ) -> None:
        if len(secret_key) < 32:
            raise ValueError("secret_key must be at least 32 characters")
        if ttl_s < 1:
            raise ValueError("ttl_s must be at least 1 second")
        self._key = hmac.new(secret_key.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self.repo = repo
        self.ttl_s = ttl_s
        self.clock = clock or SystemClock()

    def issue(self, key_id: str) -> Session:
        """A session for a key that just passed both factors."""
        expires_at = int(self.clock.now()) + self.ttl_s
        token = f"{SESSION_FORMAT}.{key_id}.{expires_at}.{self._mac(key_id, expires_at)}"
        return Session(token=token, expires_at=expires_at)

    def claims(self, token: str | None) -> Claims:
        """The claims of a genuine, unexpired token, or :class:`Unauthorized`.

        Pure: no storage read. :meth:`verify` adds the revocation check."""
        if not token:
            raise Unauthorized("missing admin session: POST /login for one")
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            raise Unauthorized("malformed admin session token")
        key_id, expires_text, mac = match.groups()
        expires_at = int(expires_text)
        if not hmac.compare_digest(mac, self._mac(key_id, expires_at)):
            raise Unauthorized("invalid admin session token")
        now = self.clock.now()
        if now >= expires_at:
            raise Unauthorized("admin session expired: log in again")
        if expires_at > now + self.ttl_s + 60:
            # Genuine but from a configuration with a longer lifetime: do not honour more
            # than today's policy grants (the 60 s absorb clock skew between replicas).
            raise Unauthorized("admin session outlives the session policy: log in again")
        return Claims(key_id=key_id, expires_at=expires_at)

    async def verify(self, token: str | None, client: str = "") -> AdminIdentity:
        """The identity behind a session token whose key is still valid."""
        key_id = self.claims(token).key_id
        # KeyRecord carries the key's secrets; only its name and revocation are used here.
        key = await self.repo.get_key(key_id)
        if key is None or key.revoked_at is not None:
            log.warning("admin session of key %s refused from %r: key revoked", key_id, client)
            raise Unauthorized("API key revoked")
        return AdminIdentity(key_id=key_id, name=key.name, client=client)

    def _mac(self, key_id: str, expires_at: int) -> str:
        return hmac.new(self._key, f"{key_id}.{expires_at}".encode(), hashlib.sha256).hexdigest()


# Module level so that OpenAPI documents one bearer scheme; it holds no state.
BEARER = HTTPBearer(auto_error=False, description="session_token from POST /login")
Produce = Callable[[str], Awaitable[tuple[int, Any]]]


@dataclasses.dataclass(frozen=True, slots=True)
class AdminCall:
    """An authenticated, rate-checked admin call and what the audit log names it."""

    who: AdminIdentity
    action: str
    target: str


def engine_request_id(key_id: str, action: str, target: str, idempotency_key: str) -> str:
    """Stable per (admin key, action, target, Idempotency-Key). The engine answers a repeated
    request id with its first answer whatever the SKU, so the key alone must not be the id:
    the same key sent to another SKU or action has to be a different request."""
    parts = "\0".join((action, target, idempotency_key)).encode()
    return f"admin:{key_id}:{hashlib.blake2b(parts, digest_size=12).hexdigest()}"


class AdminGate:
    def __init__(
        self,
        sessions: AdminSessions,
        audit: AuditLog,
        limiter: RateLimiter,
        idempotency: IdempotencyStore,
    ) -> None:
        self.sessions = sessions
        self.audit = audit
        self.limiter = limiter
        self.idempotency = idempotency

    async def record(
        self,
        who: AdminIdentity | None,
        action: str,
        target: str,
        params: dict[str, Any],
        outcome: str,
        request_id: str | None = None,
        client: str | None = None,
    ) -> None:
        """Append an audit entry; never raises."""
        try:
            await self.audit.record(who, action, target, params, outcome, request_id, client)
        except MatchdayError as exc:
            # The change (if any) is already durable in the engine; answering 503 now would
            # invite a client without an Idempotency-Key to apply it twice. The log line
            # keeps the entry for the operator instead.
            log.error(
                "audit entry not written (%s): key=%s action=%s target=%s outcome=%s params=%s",
                exc.code,
                who.key_id if who else None,
                action,
                target,
                outcome,
                params,
            )

    def require(self, action: str | None) -> Callable[..., Awaitable[AdminCall]]:
        """A route's dependency: a valid session, then the key's rate limit. ``action`` None
        marks a read, whose refusals are not audited.

        As a dependency it runs before the body is validated, so a caller without a session
        learns nothing but 401."""

        async def check(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        ) -> AdminCall:
            client = client_of(request)
            target = "/".join(str(v) for v in request.path_params.values())
            token = credentials.credentials if credentials else None
            try:
                who = await self.sessions.verify(token, client)
            except MatchdayError as exc:
                if action is not None:
                    # The limiter first: refused calls must not be able to flood the log.
                    await self.limiter.check(f"admin-ip:{client}")
                    await self.record(None, action, target, {}, exc.code, client=client)
                raise
            await self.limiter.check(f"admin:{who.key_id}")
            return AdminCall(who=who, action=action or "read", target=target)

        return check

    async def run(
        self,
        request: Request,
        call: AdminCall,
        params: dict[str, Any],
        produce: Produce,
        *,
        target: str | None = None,
    ) -> JSONResponse:
        """``produce(engine request id)`` once per Idempotency-Key, audited with its outcome
        (a replay is audited too, marked ``replayed``)."""
        target = call.target if target is None else target
        key_id = call.who.key_id or "-"
        used: list[str] = []

        async def with_request_id(key: str) -> tuple[int, Any]:
            used.append(engine_request_id(key_id, call.action, target, key))
            return await produce(used[-1])

        header_key = request.headers.get("idempotency-key")
        derived = (
            engine_request_id(key_id, call.action, target, self.idempotency.usable(header_key))
            if header_key
            else None
        )
        try:
            response = await idempotent(
                request, self.idempotency, f"admin:{key_id}", params, with_request_id
            )
        except MatchdayError as exc:
            await self.record(call.who, call.action, target, params, exc.code, derived)
            raise
        except Exception:
            await self.record(call.who, call.action, target, params, "internal", derived)
            raise
        outcome = "ok" if response.status_code < 400 else _code_of(response)
        if response.headers.get("Idempotent-Replayed") == "true":
            params = {**params, "replayed": True}
        rid = used[0] if used else derived
        await self.record(call.who, call.action, target, params, outcome, rid)
        return response


def client_of(request: Request) -> str:
    return request.client.host if request.client else "-"


def _code_of(response: JSONResponse) -> str:
    """The stable code of an error answer (a replayed one, or an import's rejection)."""
    try:
        return str(json.loads(bytes(response.body))["code"])
    except (ValueError, KeyError, TypeError):
        return "error"
