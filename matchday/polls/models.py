"""What a poll looks like: admin input, the stored poll, the offer a voter earns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from matchday.catalog.models import one_line_text
from matchday.domain.errors import MatchdayError
from matchday.inventory.commands import SKU_RE

PLACEMENT_RE = re.compile(r"^(checkout|product:[a-z0-9][a-z0-9-]{0,63})$")
POLL_ID_RE = re.compile(r"^p_[a-z2-7]{4,40}$")
OPTION_ID_RE = re.compile(r"^o[1-9][0-9]?$")
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
MAX_OPTIONS = 10

OPEN = "open"
CLOSED = "closed"

Placement = Annotated[str, Field(pattern=PLACEMENT_RE.pattern, max_length=72)]
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=f"^{SKU_RE.pattern}$")]


class PollClosed(MatchdayError):
    code = "poll_closed"
    http_status = 409

    def __init__(self, poll_id: str) -> None:
        super().__init__(poll_id)
        self.poll_id = poll_id

    def __str__(self) -> str:
        return f"poll {self.poll_id} is closed"


class AlreadyVoted(MatchdayError):
    code = "already_voted"
    http_status = 409

    def __init__(self, poll_id: str, option_id: str) -> None:
        super().__init__(poll_id, option_id)
        self.poll_id = poll_id
        self.option_id = option_id

    def __str__(self) -> str:
        return f"you already voted {self.option_id} in poll {self.poll_id}; votes are final"


class OfferInvalid(MatchdayError):
    """An offer code that is not this shopper's, expired, used, or matches nothing."""

    code = "offer_invalid"
    http_status = 409

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"offer code refused: {self.reason}"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # JSON bodies: true is not 1


class OptionIn(_In):
    label: Annotated[str, Field(min_length=1, max_length=80), AfterValidator(one_line_text)]
    sku: Sku | None = None


class OfferIn(_In):
    percent_off: int = Field(ge=1, le=50)
    product_slug: str | None = Field(default=None, pattern=SLUG_PATTERN)
    # From a minute to 30 days after the vote.
    valid_s: int = Field(ge=60, le=30 * 86_400)


class PollIn(_In):
    question: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(one_line_text)]
    placement: Placement
    options: list[OptionIn] = Field(min_length=2, max_length=MAX_OPTIONS)
    closes_at: float | None = Field(default=None, gt=0, lt=1e11)
    offer: OfferIn | None = None

    @model_validator(mode="after")
    def _sound(self) -> Self:
        labels = [o.label.strip().lower() for o in self.options]
        if len(set(labels)) != len(labels):
            raise ValueError("option labels must differ")
        if self.offer and not self.offer.product_slug and not any(o.sku for o in self.options):
            raise ValueError("an offer needs product_slug, or options that name a sku")
        return self


class VoteIn(_In):
    option_id: str = Field(min_length=2, max_length=3, pattern=OPTION_ID_RE.pattern)


@dataclass(frozen=True, slots=True)
class PollOption:
    option_id: str
    label: str
    sku: str | None
    product_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"option_id": self.option_id, "label": self.label, "sku": self.sku}


@dataclass(frozen=True, slots=True)
class OfferTerms:
    percent_off: int
    product_id: str | None  # None: the product of the SKU the voter chose
    valid_s: int


@dataclass(frozen=True, slots=True)
class Poll:
    poll_id: str
    question: str
    placement: str
    status: str
    closes_at: float | None
    created_at: float
    options: tuple[PollOption, ...] = field(default=())
    offer: OfferTerms | None = None

    def open_at(self, now: float) -> bool:
        return self.status == OPEN and (self.closes_at is None or now < self.closes_at)

    def option(self, option_id: str) -> PollOption | None:
        return next((o for o in self.options if o.option_id == option_id), None)

    def to_dict(self, now: float) -> dict[str, Any]:
        """The contract's Poll JSON, without results (the service adds those)."""
        return {
            "poll_id": self.poll_id,
            "question": self.question,
            "placement": self.placement,
            "status": OPEN if self.open_at(now) else CLOSED,
            "closes_at": self.closes_at,
            "options": [o.to_dict() for o in self.options],
            "has_offer": self.offer is not None,
        }


@dataclass(frozen=True, slots=True)
class Offer:
    """A voter's personal offer: ``code`` proves whose it is (see matchday.polls.offers)."""

    code: str
    poll_id: str
    percent_off: int
    product_id: str
    expires_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "percent_off": self.percent_off,
            "sku_prefix": None,  # offers scope a whole product (every size), not a SKU prefix
            "product_slug": self.product_id,
            "expires_at": self.expires_at,
        }
