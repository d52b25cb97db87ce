"""A drop's admission rate and where it came from: an operator's number, or ``auto``, derived
from the capacity profile ``matchday capacity measure`` wrote (ADR 0026)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from matchday.capacity.admission import admission_fans_per_s, provenance
from matchday.capacity.profile import ProfileError, parse_profile
from matchday.domain.errors import InvalidInput
from matchday.waitingroom.models import AUTO, MAX_RATE, MIN_RATE, OPERATOR, Rate

NO_PROFILE = (
    "'auto' needs a capacity profile (`matchday capacity measure` writes one): pass"
    " --profile FILE, or set MATCHDAY_CAPACITY_PROFILE on the stack"
)


@dataclass(frozen=True, slots=True)
class ResolvedRate:
    per_s: float
    source: str  # "operator", "setting", or "auto: profile ... measured ...: the arithmetic"


@dataclass(frozen=True, slots=True)
class RateSource:
    """How to turn a requested rate into fans/s: the profile (a path) and the utilisation."""

    profile_path: str = ""
    utilisation: float = 0.7

    def resolve(self, rate: Rate) -> ResolvedRate:
        if rate != AUTO:
            return ResolvedRate(float(rate), OPERATOR)
        return self.from_profile()

    def from_profile(self) -> ResolvedRate:
        """InvalidInput (a 4xx, exit 2 in the CLI) when the profile is missing or malformed."""
        if not self.profile_path:
            raise InvalidInput("rate_per_s", NO_PROFILE)
        try:
            with open(self.profile_path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            name = os.path.basename(self.profile_path)
            raise InvalidInput(
                "rate_per_s", f"'auto': cannot read profile {name}: {reason}"
            ) from None
        try:
            profile = parse_profile(text)
        except ProfileError as exc:
            raise InvalidInput("rate_per_s", f"'auto': {exc}") from None
        fans = admission_fans_per_s(profile, self.utilisation)
        per_s = min(MAX_RATE, max(MIN_RATE, round(fans, 2)))
        name = os.path.basename(self.profile_path)
        return ResolvedRate(per_s, provenance(profile, self.utilisation, name))
