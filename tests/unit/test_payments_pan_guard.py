"""The card-number detector behind the PAN guard."""

from __future__ import annotations

import pytest

from matchday.domain.cards import carries_pan, contains_pan, luhn_ok


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        '{"note": "card 4000-0566-5566-5556 thanks"}',
        "378282246310005",  # 15-digit Amex
        "6011111111111117",
        "4222222222222",  # 13 digits
        "token=pm_x&n=5555555555554444",
    ],
)
def test_card_numbers_in_any_shape_are_found(text: str) -> None:
    assert contains_pan(text)


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424241",  # fails Luhn
        "pm_card_visa",
        "1234567890123456789012345",  # 25 digits: an id, not a card
        "order 42, qty 3, 2026-11-25",
        "123456789012",  # 12 digits
    ],
)
def test_ids_dates_and_numbers_that_are_not_cards_pass(text: str) -> None:
    assert not contains_pan(text)


def test_luhn() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


@pytest.mark.parametrize(
    "text",
    ["q=4111+1111+1111+1111", "card=4111%201111%201111%201111", '{"n": "\\u0034111111111111111"}'],
)
def test_url_encoded_and_json_escaped_card_numbers_are_found(text: str) -> None:
    assert carries_pan(text)
