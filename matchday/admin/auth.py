"""Admin authentication: an API key plus a TOTP code from the key holder's authenticator.

An API key reads ``mdk_<key_id>_<secret>``. The key id is public (it appears in the audit
log); the secret is 256 bits from :mod:`secrets` and is shown once, at creation. Every admin
request presents the key and a current 6-digit code; a code is accepted once only (ADR 0005).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass

import pyotp

from matchday.admin.ports import KeyStore
from matchday.admin.records import AdminIdentity, KeyInfo, KeyRecord
from matchday.admin.sealing import SealError, TotpSeal
from matchday.domain.cards import carries_pan
from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import Forbidden, InvalidInput, NotFound, Unauthorized

log = logging.getLogger(__name__)

KEY_PREFIX = "mdk_"
_KEY_RE = re.compile(r"mdk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_CODE_RE = re.compile(r"[0-9]{6}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
ISSUER = "matchday"


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    # Five wrong codes in a row lock the key for five minutes: with valid_window=1 each
    # guess covers 3 of 10^6 codes, so a guesser gets ~1.5e-5 per lockout period.
    max_failures: int = 5
    lockout_s: float = 300.0
    step_s: int = 30
    # One step either side tolerates a phone clock ~30 s off and a code typed at the edge.
    valid_window: int = 1


def hash_secret(key_id: str, secret: str) -> bytes:
    """SHA-256, not bcrypt/argon2: a slow hash protects low-entropy, human-chosen passwords
    against guessing from a stolen hash. These secrets are 256 random bits, so no guess can
    succeed whatever the hash speed, and a fast hash keeps each admin request cheap on two
    cores. The key id is hashed in so that one key's hash is useless for another key."""
    return hashlib.sha256(f"matchday-admin:{key_id}:{secret}".encode()).digest()


def _new_key_parts() -> tuple[str, str]:
    """(key id, secret) of a new API key that never looks like a card number: the login body
    that carries it is screened for PANs (web/pan_guard.py), and about one hex key id in a
    thousand holds a run of 13+ digits that passes Luhn (a login refused with 422, seen in
    a CI run). Such a draw is simply drawn again."""
    while True:
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        if not carries_pan(f"{KEY_PREFIX}{key_id}_{secret}"):
            return key_id, secret


class AdminAuth:
    def __init__(
        self,
        repo: KeyStore,
        clock: Clock | None = None,
        policy: AuthPolicy | None = None,
        seal: TotpSeal | None = None,
    ) -> None:
        self.repo = repo
        self.clock = clock or SystemClock()
        self.policy = policy or AuthPolicy()
        # None: secrets are written in the clear (tests' throwaway keys); every process of a
        # running shop passes one (the admin API, the CLI), and both forms are read.
        self.seal = seal

    async def create_key(self, name: str) -> tuple[str, str, str]:
        """(api_key, totp_secret, provisioning_uri): shown once. The key's secret is stored
        hashed, the TOTP secret sealed (matchday.admin.sealing; ADR 0005)."""
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise InvalidInput("name", "must be 1-64 letters, digits, spaces or '._@-'")
        key_id, secret = _new_key_parts()
        totp_secret = pyotp.random_base32()
        stored = self.seal.seal(key_id, totp_secret) if self.seal else totp_secret
        await self.repo.insert_key(
            key_id, name, hash_secret(key_id, secret), stored, self.clock.now()
        )
        uri = self._totp(totp_secret).provisioning_uri(
            name=f"{name} ({key_id})", issuer_name=ISSUER
        )
        return f"{KEY_PREFIX}{key_id}_{secret}", totp_secret, uri

    async def authenticate(
        self, api_key: str | None, totp_code: str | None, client: str = ""
    ) -> AdminIdentity:
        """The identity behind a valid key and a fresh code, or :class:`Unauthorized`
        (:class:`Forbidden` while the key is locked out)."""
        match = _KEY_RE.fullmatch(api_key) if isinstance(api_key, str) else None
        if match is None:
            raise self._refuse(None, client, "missing or malformed API key")
        key_id, secret = match.groups()
        key = await self.repo.get_key(key_id)
        # Compare against a hash even for an unknown key id, so both cost the same.
        expected = key.secret_hash if key else hash_secret(key_id, "")
        if not hmac.compare_digest(expected, hash_secret(key_id, secret)) or key is None:
            raise self._refuse(key_id, client, "unknown API key")
        if key.revoked_at is not None:
            raise self._refuse(key_id, client, "API key revoked")
        now = self.clock.now()
        if key.locked_until is not None and now < key.locked_until:
            log.warning("admin key %s refused from %r: locked", key_id, client)
            raise Forbidden(
                f"API key locked after repeated wrong codes;"
                f" retry in {key.locked_until - now:.0f} s"
            )
        # Failures are counted only from here on: only the holder of the secret can lock a
        # key, so knowing a key id (it is in the audit log) is not enough to lock an admin out.
        if not isinstance(totp_code, str) or not _CODE_RE.fullmatch(totp_code):
            raise await self._fail(key, client, "missing or malformed TOTP code")
        step = self._matching_step(key, totp_code, now)
        if step is None:
            raise await self._fail(key, client, "wrong TOTP code")
        if key.last_totp_step is not None and step <= key.last_totp_step:
            raise await self._fail(key, client, "TOTP code already used")
        if not await self.repo.accept_step(key_id, step):
            # Another request with this code (or a later one) won the race, or the key was
            # revoked meanwhile.
            raise await self._fail(key, client, "TOTP code already used")
        return AdminIdentity(key_id, key.name, client)

    async def revoke(self, key_id: str) -> KeyInfo:
        """Revoke a key for good; revoking twice keeps the first revocation."""
        info = await self.repo.revoke_key(key_id, self.clock.now())
        if info is None:
            raise NotFound("admin key", key_id)
        return info

    async def list_keys(self) -> list[KeyInfo]:
        return await self.repo.list_keys()

    # -- internals -------------------------------------------------------------------------

    def _totp(self, totp_secret: str) -> pyotp.TOTP:
        return pyotp.TOTP(totp_secret, interval=self.policy.step_s)

    def _matching_step(self, key: KeyRecord, code: str, now: float) -> int | None:
        """The newest step within the window whose code is ``code`` (pyotp's ``verify``
        answers only yes or no, and replay protection needs to know which step matched).
        A step not newer than the last accepted one is still returned: that is a replay."""
        totp = self._totp(self._secret_of(key))
        current = int(now // self.policy.step_s)
        reach = self.policy.valid_window
        newest_first = range(current + reach, current - reach - 1, -1)
        matched = [s for s in newest_first if hmac.compare_digest(totp.generate_otp(s), code)]
        fresh = [s for s in matched if key.last_totp_step is None or s > key.last_totp_step]
        if fresh:
            return fresh[0]
        return matched[0] if matched else None

    def _secret_of(self, key: KeyRecord) -> str:
        if self.seal is None:
            return key.totp_secret
        try:
            return self.seal.open(key.key_id, key.totp_secret)
        except SealError:
            # Not the admin's fault and not fixable by retrying: say what an operator can do.
            log.error("admin key %s: TOTP secret does not open (secret key changed?)", key.key_id)
            raise Unauthorized(
                "this key's second factor cannot be read with the current secret key:"
                " create a new admin key"
            ) from None

    def _refuse(self, key_id: str | None, client: str, reason: str) -> Unauthorized:
        log.warning("admin key %s refused from %r: %s", key_id or "-", client, reason)
        return Unauthorized(reason)

    async def _fail(self, key: KeyRecord, client: str, reason: str) -> Unauthorized:
        until = self.clock.now() + self.policy.lockout_s
        locked = await self.repo.record_failure(key.key_id, self.policy.max_failures, until)
        if locked is not None:
            reason = f"{reason}; API key locked for {self.policy.lockout_s:.0f} s"
        return self._refuse(key.key_id, client, reason)
