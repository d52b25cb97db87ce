"""A new admin API key never looks like a card number: the login body that carries it is
screened for PANs (web/pan_guard.py), so such a key could never log in (a CI run met one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from matchday.admin import auth
from matchday.admin.auth import AdminAuth
from matchday.domain.cards import carries_pan


class Keys:
    """Only what create_key writes."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    async def insert_key(
        self, key_id: str, name: str, secret_hash: bytes, totp_secret: str, at: float
    ) -> None:
        self.rows.append((key_id, name))


def draws(*values: str) -> Iterator[str]:
    yield from values


async def test_a_key_id_holding_a_card_number_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first draw's key id is all digits and passes Luhn (4111 1111 1111 1111).
    ids = draws("4111111111111111", "a4111111111111bc")
    monkeypatch.setattr(auth.secrets, "token_hex", lambda n: next(ids))
    keys = Keys()
    api_key, _, _ = await AdminAuth(keys).create_key("ops")  # type: ignore[arg-type]
    assert api_key.startswith("mdk_a4111111111111bc_") and not carries_pan(api_key)
    assert keys.rows == [("a4111111111111bc", "ops")]


async def test_many_new_keys_all_pass_the_card_screen() -> None:
    keys: Any = Keys()
    made = [(await AdminAuth(keys).create_key("ops"))[0] for _ in range(300)]
    assert not [k for k in made if carries_pan(f'{{"api_key": "{k}", "totp_code": "123456"}}')]
