"""Second-factor secrets at rest, on the kernel's keyring (apps.core.crypto).

- An authenticator (TOTP) key is sealed with AES-256-GCM directly under the current
  key-encryption key (KEK). The associated data names the device row and its user, so a
  ciphertext copied onto another device row (or another user's row) fails authentication instead
  of yielding a working second factor there. That is why a device row exists before its key is
  sealed. The key is 20 bytes: re-sealing it under a new KEK is as cheap as re-wrapping a data
  key, so no envelope is needed.
- A recovery code is stored only as a keyed hash: HMAC-SHA256 under a subkey derived from a KEK.
  Codes carry 40 bits of entropy, so a plain (unkeyed) hash in a database dump would be reversed
  by brute force in minutes; a keyed hash whose key never enters the database reveals nothing
  from a dump alone. The key comes from the keyring, not SECRET_KEY, because SECRET_KEY is
  rotated for reasons of its own (sessions, signed links) and would silently invalidate every
  code, while the keyring already has the rotation rule this needs: each code row records the
  id of the KEK it was hashed under, and old codes keep working while that KEK stays on the
  ring. The subkey is derived with a fixed label (domain separation), so a KEK never serves as
  both an AES key and an HMAC key. A password hash (PBKDF2) would add nothing against a dump
  the key is not in, and would make each code check cost ten slow hashes.

Nothing here falls back to plaintext: without a keyring every function raises (CryptoError).
"""

from __future__ import annotations

import hashlib
import hmac

from django.views.decorators.debug import sensitive_variables

from apps.core.crypto import aead_open, aead_seal, keyring

TOTP_FORMAT = b"kraken-portal/accounts/totp/v1"
RECOVERY_LABEL = b"kraken-portal/accounts/recovery-code/v1"


def totp_aad(*, device_id: int, user_id: int, kek_id: str) -> bytes:
    return b"|".join(
        (
            TOTP_FORMAT,
            f"device={device_id}".encode(),
            f"user={user_id}".encode(),
            f"kek={kek_id}".encode(),
        )
    )


@sensitive_variables()
def totp_key_seal(*, device_id: int, user_id: int, key: bytes) -> tuple[str, bytes]:
    """(KEK id, ciphertext) of an authenticator key for the device row `device_id`."""
    ring = keyring()
    kek_id = ring.current_id
    aad = totp_aad(device_id=device_id, user_id=user_id, kek_id=kek_id)
    return kek_id, aead_seal(ring.current_key, key, aad)


@sensitive_variables()
def totp_key_open(*, device_id: int, user_id: int, kek_id: str, ciphertext: bytes) -> bytes:
    """The authenticator key `totp_key_seal` sealed for this row; CryptoKeyError otherwise."""
    aad = totp_aad(device_id=device_id, user_id=user_id, kek_id=kek_id)
    return aead_open(keyring().get(kek_id), bytes(ciphertext), aad)


def current_kek_id() -> str:
    return keyring().current_id


@sensitive_variables()
def recovery_code_digest(*, user_id: int, code: str, kek_id: str) -> str:
    """The keyed hash a recovery code is stored as, bound to its user (hex, 64 characters)."""
    subkey = hmac.new(keyring().get(kek_id), RECOVERY_LABEL, hashlib.sha256).digest()
    message = f"user={user_id}|code={code}".encode()
    return hmac.new(subkey, message, hashlib.sha256).hexdigest()
