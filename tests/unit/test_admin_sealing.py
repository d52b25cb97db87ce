"""TOTP secrets sealed at rest: bound to the shop key and to the admin key id."""

from __future__ import annotations

import secrets

import pyotp
import pytest

from matchday.admin.sealing import SealError, TotpSeal


def test_a_sealed_secret_opens_with_the_same_key_and_key_id_only() -> None:
    seal = TotpSeal(secrets.token_hex(32))
    totp_secret = pyotp.random_base32()
    stored = seal.seal("0123456789abcdef", totp_secret)
    assert stored.startswith("v1:") and totp_secret not in stored
    assert seal.open("0123456789abcdef", stored) == totp_secret
    assert seal.seal("0123456789abcdef", totp_secret) != stored  # a fresh nonce each time
    with pytest.raises(SealError):
        seal.open("fedcba9876543210", stored)  # copied onto another key's row
    with pytest.raises(SealError):
        TotpSeal(secrets.token_hex(32)).open("0123456789abcdef", stored)


@pytest.mark.parametrize("edit", [lambda s: s[:-2] + "AA", lambda s: s[:-5], lambda s: "v1:@@"])
def test_an_edited_value_does_not_open(edit: object) -> None:
    seal = TotpSeal(secrets.token_hex(32))
    stored = seal.seal("0123456789abcdef", pyotp.random_base32())
    with pytest.raises(SealError):
        seal.open("0123456789abcdef", edit(stored))  # type: ignore[operator]


def test_a_value_written_in_the_clear_is_read_as_it_is() -> None:
    assert TotpSeal(secrets.token_hex(32)).open("k", "JBSWY3DPEHPK3PXP") == "JBSWY3DPEHPK3PXP"


def test_a_short_shop_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        TotpSeal("short")


def test_resealing_moves_a_secret_to_the_new_key_once_and_refuses_what_neither_opens() -> None:
    from matchday.admin.rotation import resealed

    old, new, other = (TotpSeal(secrets.token_hex(32)) for _ in range(3))
    under_old = old.seal("k1", "JBSWY3DPEHPK3PXP")
    moved = resealed("k1", under_old, old, new)
    assert moved is not None and new.open("k1", moved) == "JBSWY3DPEHPK3PXP"
    assert resealed("k1", moved, old, new) is None  # already under the new key
    clear = resealed("k1", "JBSWY3DPEHPK3PXP", old, new)
    assert clear is not None and new.open("k1", clear) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SealError):
        resealed("k1", other.seal("k1", "JBSWY3DPEHPK3PXP"), old, new)
    with pytest.raises(SealError):  # bound to its key id: a row copied onto another key
        resealed("k2", under_old, old, new)
