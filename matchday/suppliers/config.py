"""Supplier settings (``MATCHDAY_SUPPLIER_*``) and the services a process holds.

Read where a process starts (a Serve replica, the sync actor, the CLI), never at import;
matchday/bootstrap/contexts.py builds the services from them (``supplier_services``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from matchday.suppliers.admin import GRACE_S, SupplierAdmin
from matchday.suppliers.apply import Applier
from matchday.suppliers.bulk import BulkSyncs, SyncTuning
from matchday.suppliers.ports import SupplierStore
from matchday.suppliers.push import PushService
from matchday.suppliers.signing import WINDOW_S

_TUNING = SyncTuning()


class SupplierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MATCHDAY_SUPPLIER_", extra="ignore")

    signature_window_s: float = Field(default=WINDOW_S, ge=30, le=3600)
    secret_grace_s: float = Field(default=GRACE_S, ge=0, le=30 * 24 * 3600)
    # Answered messages are kept this long for idempotency (a week of supplier retries),
    # far beyond the signature window that already refuses a replay.
    message_retention_s: float = Field(default=7 * 24 * 3600, ge=3600)
    sync_max_load: float = Field(default=_TUNING.max_load, ge=0)
    sync_chunk_lines: int = Field(default=_TUNING.chunk_lines, ge=1, le=10_000)
    sync_immediate_lines: int = Field(default=_TUNING.immediate_lines, ge=0)
    sync_lease_s: float = Field(default=_TUNING.lease_s, ge=5)
    sync_idle_s: float = Field(default=_TUNING.idle_s, gt=0)

    def tuning(self) -> SyncTuning:
        return SyncTuning(
            max_load=self.sync_max_load,
            chunk_lines=self.sync_chunk_lines,
            immediate_lines=self.sync_immediate_lines,
            lease_s=self.sync_lease_s,
            idle_s=self.sync_idle_s,
        )


@dataclass(frozen=True, slots=True)
class SupplierServices:
    repo: SupplierStore
    admin: SupplierAdmin
    push: PushService
    bulk: BulkSyncs
    applier: Applier
