"""Re-sealing admins' TOTP secrets under a new shop secret key (``matchday admin reseal``).

The sealing key is derived from ``MATCHDAY_SECRET_KEY`` (ADR 0005). Rotating that key would
otherwise leave every admin key's second factor unreadable, so every admin would need a new
key. Re-sealing opens each stored secret with the old key and seals it with the new one; the
API key and the authenticator app stay as they are.

Safe to run again, and before or after the switch: a row the new key already opens is left
alone, a row in the clear is sealed, and a row neither key opens is reported and untouched.
Each row is replaced only if it still holds what was read (compare and set), so a key created
or re-sealed concurrently is never overwritten with stale text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from matchday.admin.sealing import PREFIX, SealError, TotpSeal


class SealedRows(Protocol):
    async def totp_rows(self) -> Sequence[tuple[str, str]]: ...

    async def replace_totp(self, key_id: str, expected: str, stored: str) -> bool: ...


@dataclass
class ResealReport:
    resealed: list[str] = field(default_factory=list)  # opened with the old key
    sealed_clear: list[str] = field(default_factory=list)  # were stored in the clear
    current: list[str] = field(default_factory=list)  # the new key opens them already
    unreadable: list[str] = field(default_factory=list)  # neither key opens them
    raced: list[str] = field(default_factory=list)  # changed while we worked: run again

    @property
    def ok(self) -> bool:
        return not self.unreadable and not self.raced


def resealed(key_id: str, stored: str, old: TotpSeal, new: TotpSeal) -> str | None:
    """The row's new stored value, or None when the new key opens it already.

    Raises :class:`SealError` when neither key opens it."""
    if not stored.startswith(PREFIX):
        return new.seal(key_id, stored)
    try:
        new.open(key_id, stored)
        return None
    except SealError:
        return new.seal(key_id, old.open(key_id, stored))


async def reseal_all(
    rows: SealedRows,
    old: TotpSeal,
    new: TotpSeal,
    progress: Callable[[str, str], None] = lambda key_id, outcome: None,
) -> ResealReport:
    report = ResealReport()
    for key_id, stored in await rows.totp_rows():
        try:
            value = resealed(key_id, stored, old, new)
        except SealError:
            report.unreadable.append(key_id)
            progress(key_id, "unreadable")
            continue
        if value is None:
            report.current.append(key_id)
            progress(key_id, "current")
        elif not await rows.replace_totp(key_id, stored, value):
            report.raced.append(key_id)
            progress(key_id, "changed meanwhile")
        else:
            outcome = "resealed" if stored.startswith(PREFIX) else "sealed_clear"
            getattr(report, outcome).append(key_id)
            progress(key_id, outcome)
    return report
