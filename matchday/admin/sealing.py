"""TOTP secrets sealed at rest with AES-256-GCM under a key derived from the secret key.

TOTP is symmetric: the server must hold each admin's secret to compute codes, so it cannot be
hashed like the API key. Sealed, a copy of ``admin_keys`` (a backup, a replica, a leaked dump)
no longer yields working codes without ``MATCHDAY_SECRET_KEY`` as well. The key id is bound in
as associated data, so a sealed secret copied onto another key's row does not open.

A stored value without the ``v1:`` prefix is a secret written before sealing existed (or by a
tool that was given no key): it is read as it is, and sealed the next time it is written.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "v1:"
_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed secret did not open: another secret key, or an edited row."""


class TotpSeal:
    """``info`` separates the keys of different kinds of secret (supplier signing secrets
    use their own, matchday/suppliers/signing.py); ``what`` names them in errors."""

    def __init__(
        self,
        secret_key: str,
        *,
        info: bytes = b"matchday admin totp v1",
        what: str = "the TOTP secret of admin key",
    ) -> None:
        if len(secret_key) < 32:
            raise ValueError("secret_key must be at least 32 characters")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
            secret_key.encode()
        )
        self._aead = AESGCM(derived)
        self._what = what

    def seal(self, key_id: str, totp_secret: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, totp_secret.encode(), key_id.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, key_id: str, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # written in the clear (module doc)
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :])
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], key_id.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError(f"{self._what} {key_id} does not open") from exc
        return plain.decode()
