"""Operators' side: suppliers, their signing secrets, their SKU mappings.

A signing secret is generated here (never chosen by a person), returned once to the caller
that created or rotated it, and stored sealed (``signing.SecretSeal``): it is not in the
audit log, the idempotency store, a log line or an answer after that one. A rotation keeps
the previous secret valid for ``grace_s`` so a supplier can switch without dropping pushes.

The HTTP routes (matchday/web/admin_suppliers.py) and the CLI (cluster/suppliers_cli.py)
both call this, and audit every call with its outcome.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from matchday.admin.sealing import PREFIX
from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import Conflict, InvalidInput, NotFound
from matchday.inventory.commands import SKU_RE
from matchday.suppliers.model import (
    DEFAULT_MAX_UNITS,
    MAX_UNITS_CAP,
    SUPPLIER_ID_RE,
    SUPPLIER_SKU_RE,
    Mapping,
    Supplier,
)
from matchday.suppliers.ports import SupplierStore
from matchday.suppliers.signing import SecretSeal, new_secret

# A day to switch secrets: a supplier's deploy cycle, not a match's length.
GRACE_S = 24 * 3600.0
MAX_MAPPINGS = 1_000  # per request; a catalogue is mapped in a few calls, or from the CLI

SupplierId = Annotated[str, Field(pattern=f"^{SUPPLIER_ID_RE.pattern}$")]
FeedUrl = Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")]
Name = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]+$")]
Every = Annotated[int, Field(ge=60, le=7 * 24 * 3600, strict=True)]
Units = Annotated[int, Field(ge=1, le=MAX_UNITS_CAP, strict=True)]
Format = Annotated[str, Field(pattern="^(json|csv)$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupplierIn(_In):
    supplier_id: SupplierId = Field(description="lowercase letters, digits and '-'; in URLs")
    name: Name
    feed_url: FeedUrl | None = Field(None, description="the feed matchday pulls, if any")
    feed_format: Format = "json"
    pull_every_s: Every | None = Field(None, description="pull schedule; none: no pulls")
    max_units: Units = Field(DEFAULT_MAX_UNITS, description="a larger count is refused")


class SupplierPatch(_In):
    """The fields given change; the others stay. ``null`` removes the feed or schedule."""

    name: Name | None = None
    feed_url: FeedUrl | None = None
    feed_format: Format | None = None
    pull_every_s: Every | None = None
    max_units: Units | None = None
    active: bool | None = None


class MappingIn(_In):
    supplier_sku: str = Field(min_length=1, max_length=64, pattern=SUPPLIER_SKU_RE.pattern)
    sku: str = Field(min_length=1, max_length=64, pattern=f"^{SKU_RE.pattern}$")


class MappingsIn(_In):
    mappings: list[MappingIn] = Field(min_length=1, max_length=MAX_MAPPINGS)


@dataclass(frozen=True, slots=True)
class Issued:
    """A supplier and the signing secret it was just given: shown this once."""

    supplier: Supplier
    secret: str
    previous_valid_until: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            **self.supplier.public(),
            "secret": self.secret,
            "previous_valid_until": self.previous_valid_until,
        }


class SupplierAdmin:
    def __init__(
        self,
        repo: SupplierStore,
        seal: SecretSeal,
        *,
        clock: Clock | None = None,
        grace_s: float = GRACE_S,
    ) -> None:
        self.repo = repo
        self.seal = seal
        self.clock = clock or SystemClock()
        self.grace_s = grace_s

    async def create(self, spec: SupplierIn, key: str | None = None) -> Issued:
        """A new supplier and its first secret; :class:`Conflict` if the id is taken,
        unless by this same ``key`` (an Idempotency-Key), which gets the same answer."""
        now = self.clock.now()
        supplier = Supplier(
            supplier_id=spec.supplier_id,
            name=spec.name,
            feed_url=spec.feed_url,
            feed_format=spec.feed_format,
            pull_every_s=spec.pull_every_s,
            max_units=spec.max_units,
            active=True,
            created_at=now,
            updated_at=now,
        )
        secret = new_secret()
        sealed = self.seal.seal(spec.supplier_id, secret)
        if await self.repo.insert_supplier(supplier, sealed, _digest(key)):
            return Issued(supplier, secret)
        again = await self._reissue(spec.supplier_id, key)
        if again is None:
            raise Conflict(f"supplier {spec.supplier_id} exists already")
        return again

    async def get(self, supplier_id: str) -> Supplier:
        supplier = await self.repo.get_supplier(supplier_id)
        if supplier is None:
            raise NotFound("supplier", supplier_id)
        return supplier

    async def list(self) -> list[Supplier]:
        return await self.repo.list_suppliers()

    async def update(self, supplier_id: str, patch: SupplierPatch) -> Supplier:
        changes = patch.model_dump(exclude_unset=True)
        if changes.get("active") is None:
            changes.pop("active", None)  # a flag has no "remove"
        for name in ("name", "feed_format", "max_units"):
            if name in changes and changes[name] is None:
                raise InvalidInput(name, "cannot be removed")
        if not changes:
            return await self.get(supplier_id)
        supplier = await self.repo.update_supplier(supplier_id, changes, self.clock.now())
        if supplier is None:
            raise NotFound("supplier", supplier_id)
        return supplier

    async def rotate(self, supplier_id: str, key: str | None = None) -> Issued:
        """A new secret now; the current one keeps verifying for ``grace_s``. The same
        ``key`` again answers the secret it issued instead of rotating a second time (which
        would push the supplier's working secret out of its grace period unseen)."""
        now = self.clock.now()
        secret = new_secret()
        until = now + self.grace_s
        sealed = self.seal.seal(supplier_id, secret)
        if await self.repo.rotate_secret(supplier_id, sealed, until, now, _digest(key)):
            return Issued(await self.get(supplier_id), secret, until)
        again = await self._reissue(supplier_id, key)
        if again is None:
            raise NotFound("supplier", supplier_id)
        return again

    async def _reissue(self, supplier_id: str, key: str | None) -> Issued | None:
        """The current secret, when ``key`` is the one that issued it."""
        issued = await self.repo.issued(supplier_id)
        if key is None or issued is None or issued[0] != _digest(key):
            return None
        supplier, stored = await self.get(supplier_id), await self.repo.sealed_secrets(supplier_id)
        assert stored is not None
        secret = self.seal.open_current(supplier_id, issued[1])
        return Issued(supplier, secret, stored[1].previous_until)

    async def map(self, supplier_id: str, body: MappingsIn) -> dict[str, Mapping]:
        """Add or retarget mappings, all or none: every SKU must exist, each supplier SKU
        and each SKU appear once (:class:`InvalidInput` listing the first problems)."""
        await self.get(supplier_id)
        pairs = [(m.supplier_sku, m.sku) for m in body.mappings]
        problems = _duplicates(pairs)
        known = await self.repo.counters({sku for _, sku in pairs})
        problems += [f"no inventory for SKU {sku}" for _, sku in pairs if sku not in known]
        if problems:
            raise InvalidInput("mappings", "; ".join(problems[:10]))
        await self.repo.put_mappings(supplier_id, pairs, self.clock.now())
        return await self.repo.mappings(supplier_id, [s for s, _ in pairs])

    async def unmap(self, supplier_id: str, supplier_sku: str) -> None:
        if not await self.repo.delete_mapping(supplier_id, supplier_sku):
            raise NotFound("mapping", f"{supplier_id}/{supplier_sku}")

    async def mappings(self, supplier_id: str) -> dict[str, Mapping]:
        await self.get(supplier_id)
        return await self.repo.mappings(supplier_id)


class SecretRows:
    """Suppliers' sealed secrets as ``matchday.admin.rotation.reseal_all`` reads and writes
    them, so ``matchday suppliers reseal`` re-seals them after a secret-key rotation exactly
    as ``matchday admin reseal`` does TOTP secrets. Only sealed rows are offered: a value in
    the clear was not written by matchday and must not become a trusted secret by this."""

    def __init__(self, repo: SupplierStore) -> None:
        self.repo = repo

    async def totp_rows(self) -> list[tuple[str, str]]:
        return [(sid, v) for sid, v in await self.repo.sealed_rows() if v.startswith(PREFIX)]

    async def replace_totp(self, key_id: str, expected: str, stored: str) -> bool:
        return await self.repo.replace_sealed(key_id, expected, stored)


def _digest(key: str | None) -> str | None:
    return None if key is None else hashlib.sha256(key.encode()).hexdigest()


def _duplicates(pairs: list[tuple[str, str]]) -> list[str]:
    problems = []
    for index, label in ((0, "supplier SKU"), (1, "SKU")):
        seen: set[str] = set()
        for pair in pairs:
            if pair[index] in seen:
                problems.append(f"{label} {pair[index]} given twice")
            seen.add(pair[index])
    return problems
