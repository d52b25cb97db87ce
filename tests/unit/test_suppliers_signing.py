"""Push signatures: HMAC over timestamp + body, a time window, rotation, sealed secrets."""

from __future__ import annotations

import pytest

from matchday.admin.sealing import TotpSeal
from matchday.suppliers.model import InvalidSignature, SealedSecrets
from matchday.suppliers.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SecretSeal,
    new_secret,
    sign,
    signed_headers,
    verify,
)

NOW = 1_800_000_000.0
BODY = b'{"message_id":"m-1","lines":[{"sku":"A","level":1}]}'
KEY = "k" * 40


def test_a_signed_body_verifies_and_answers_its_timestamp() -> None:
    secret = new_secret()
    assert secret.startswith("mdsup_") and len(secret) > 40
    h = signed_headers(secret, int(NOW), BODY)
    assert verify([secret], h[SIGNATURE_HEADER], h[TIMESTAMP_HEADER], BODY, NOW) == int(NOW)


@pytest.mark.parametrize(
    ("signature", "timestamp", "body", "reason"),
    [
        (None, str(int(NOW)), BODY, "missing X-Matchday-Signature"),
        ("sha256=abc", str(int(NOW)), BODY, "must be v1="),
        ("v1=" + "0" * 64, str(int(NOW)), BODY, "does not match"),
        ("SIG", str(int(NOW)), BODY + b" ", "does not match"),  # body changed after signing
        ("SIG", None, BODY, "whole epoch seconds"),
        ("SIG", "1.8e9", BODY, "whole epoch seconds"),
        ("SIG", str(int(NOW) - 301), BODY, "more than 300 s"),  # a replay, minutes later
        ("SIG", str(int(NOW) + 301), BODY, "more than 300 s"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(
    signature: str | None, timestamp: str | None, body: bytes, reason: str
) -> None:
    secret = new_secret()
    if signature == "SIG":
        ts = int(timestamp) if timestamp and timestamp.isdigit() else int(NOW)
        signature = sign(secret, ts, BODY)
    with pytest.raises(InvalidSignature, match=reason):
        verify([secret], signature, timestamp, body, NOW)


def test_a_timestamp_cannot_be_moved_without_the_secret() -> None:
    secret = new_secret()
    old = int(NOW) - 3600
    captured = sign(secret, old, BODY)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify([secret], captured, str(int(NOW)), BODY, NOW)  # re-dated replay


def test_during_a_rotation_either_secret_and_a_double_signature_verify() -> None:
    old, new = new_secret(), new_secret()
    both = sign(old, int(NOW), BODY) + "," + sign(new, int(NOW), BODY)
    assert verify([new, old], both, str(int(NOW)), BODY, NOW)
    assert verify([new, old], sign(old, int(NOW), BODY), str(int(NOW)), BODY, NOW)
    with pytest.raises(InvalidSignature):
        verify([new], sign(old, int(NOW), BODY), str(int(NOW)), BODY, NOW)


def test_secrets_are_sealed_bound_to_their_supplier_and_expire_after_rotation() -> None:
    seal = SecretSeal(KEY)
    current, previous = new_secret(), new_secret()
    sealed = SealedSecrets(seal.seal("acme", current), seal.seal("acme", previous), NOW + 10)
    assert current not in sealed.current
    assert seal.open_all("acme", sealed, NOW) == [current, previous]
    assert seal.open_all("acme", sealed, NOW + 11) == [current]  # grace over
    assert seal.open_all("other", sealed, NOW) == []  # copied onto another supplier's row
    assert SecretSeal("x" * 40).open_all("acme", sealed, NOW) == []  # another secret key
    # Under the admin TOTP key derivation it does not open either: keys are per purpose.
    assert TotpSeal(KEY).seal("acme", "s") != seal.seal("acme", "s")
    clear = SealedSecrets(current)  # a row written without sealing is not trusted
    assert seal.open_all("acme", clear, NOW) == []
