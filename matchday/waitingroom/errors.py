"""What the waiting room refuses with: each a clear 4xx in matchday's JSON error shape."""

from __future__ import annotations

from matchday.domain.errors import MatchdayError


class TokenMalformed(MatchdayError):
    """A ticket, pass or challenge that is not one in shape (422)."""

    code = "token_malformed"
    http_status = 422

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what

    def __str__(self) -> str:
        return f"malformed {self.what}"


class TokenRefused(MatchdayError):
    """Forged, or another shopper's, or another drop's (403): tokens are not transferable."""

    code = "token_refused"
    http_status = 403

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what} refused: {self.reason}"


class TokenExpired(MatchdayError):
    code = "token_expired"
    http_status = 410

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what

    def __str__(self) -> str:
        return f"the {self.what} has expired"


class PassRequired(MatchdayError):
    """A drop's SKU, asked for without a pass of that drop (403)."""

    code = "pass_required"
    http_status = 403

    def __init__(self, sku: str, drop_id: str) -> None:
        super().__init__(sku, drop_id)
        self.sku = sku
        self.drop_id = drop_id

    def __str__(self) -> str:
        return (
            f"{self.sku} is in drop {self.drop_id}: join its queue and send the pass as "
            "X-Matchday-Pass"
        )


class BotSuspected(MatchdayError):
    code = "bot_suspected"
    http_status = 403

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"refused as automated: {self.reason}"


class WrongPow(MatchdayError):
    """A proof of work that does not solve its challenge (422)."""

    code = "invalid_proof_of_work"
    http_status = 422

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"proof of work: {self.reason}"


class NotAdmitted(MatchdayError):
    """A pass claimed before the fan's turn (409); the status says where the fan stands."""

    code = "not_admitted"
    http_status = 409

    def __init__(self, state: str, position: int | None) -> None:
        super().__init__(state, position)
        self.state = state
        self.position = position

    def __str__(self) -> str:
        where = f" at position {self.position}" if self.position is not None else ""
        return f"not admitted: {self.state.replace('_', ' ')}{where}"
