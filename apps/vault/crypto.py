"""Envelope encryption for stored Kraken API secrets, on the kernel's keyring and AES-GCM
(apps.core.crypto).

Each credential gets a fresh 256-bit data key. The secret (and the optional API-key password)
are sealed with AES-256-GCM under that data key; the data key itself is sealed ("wrapped") with
AES-256-GCM under a key-encryption key (KEK) from `settings.PORTAL_KEYRING`, and the KEK's id is
stored beside the wrapped key. Rotating the KEK therefore re-wraps 32 bytes per row and never
touches the secrets.

Every seal binds the credential's id, organization id and owner id as associated data, so a
ciphertext copied onto another row fails authentication instead of decrypting there. That is
why a row must exist (have its primary key) before its secret is sealed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.views.decorators.debug import sensitive_variables

from apps.core.crypto import (
    DECRYPT_FAILED,
    KEK_UNKNOWN,
    KEYRING_MALFORMED,
    CryptoError,
    CryptoKeyError,
    Keyring,
    KeyringUnavailable,
    aead_open,
    aead_seal,
    data_key_new,
    generate_kek,
    keyring,
    keyring_check,
)
from apps.core.crypto import KEYRING_UNAVAILABLE as VAULT_UNAVAILABLE

__all__ = [
    "DECRYPT_FAILED",
    "KEK_UNKNOWN",
    "KEYRING_MALFORMED",
    "VAULT_UNAVAILABLE",
    "Binding",
    "Keyring",
    "Opened",
    "Sealed",
    "VaultError",
    "VaultKeyError",
    "VaultUnavailable",
    "generate_kek",
    "keyring",
    "keyring_check",
    "open_sealed",
    "rewrap",
    "seal",
]

FORMAT = b"kraken-portal/vault/v1"

# The vault's names for the kernel's errors, which its callers and messages use.
VaultError = CryptoError
VaultUnavailable = KeyringUnavailable
VaultKeyError = CryptoKeyError


@dataclass(frozen=True)
class Binding:
    """The row a ciphertext belongs to. All three ids go into the associated data."""

    credential_id: int
    org_id: int
    owner_id: int

    def aad(self, purpose: str) -> bytes:
        return b"|".join(
            (
                FORMAT,
                purpose.encode(),
                f"credential={self.credential_id}".encode(),
                f"org={self.org_id}".encode(),
                f"owner={self.owner_id}".encode(),
            )
        )


@dataclass(frozen=True)
class Sealed:
    """What a credential row stores. Every field is safe to keep in the database."""

    kek_id: str
    wrapped_key: bytes
    secret_ciphertext: bytes
    otp_ciphertext: bytes | None

    def __repr__(self) -> str:
        return f"Sealed(kek_id={self.kek_id!r})"


@dataclass(frozen=True)
class Opened:
    """A decrypted secret. Lives only in memory inside a task; repr hides both values."""

    secret: str
    otp: str | None

    def __repr__(self) -> str:
        return "Opened(secret=<hidden>, otp=<hidden>)"


def _wrap_aad(binding: Binding, kek_id: str) -> bytes:
    return binding.aad("data-key") + b"|kek=" + kek_id.encode()


@sensitive_variables()
def _unwrap(ring: Keyring, binding: Binding, kek_id: str, wrapped_key: bytes) -> bytes:
    return aead_open(ring.get(kek_id), wrapped_key, _wrap_aad(binding, kek_id))


@sensitive_variables()
def seal(*, binding: Binding, secret: str, otp: str | None) -> Sealed:
    """Encrypt a secret (and optional API-key password) for the row `binding` names."""
    ring = keyring()
    data_key = data_key_new()
    kek_id = ring.current_id
    return Sealed(
        kek_id=kek_id,
        wrapped_key=aead_seal(ring.current_key, data_key, _wrap_aad(binding, kek_id)),
        secret_ciphertext=aead_seal(data_key, secret.encode(), binding.aad("secret")),
        otp_ciphertext=aead_seal(data_key, otp.encode(), binding.aad("otp")) if otp else None,
    )


@sensitive_variables()
def open_sealed(*, binding: Binding, sealed: Sealed) -> Opened:
    """Decrypt what `seal` produced for the same row; raises VaultKeyError on any mismatch."""
    ring = keyring()
    data_key = _unwrap(ring, binding, sealed.kek_id, sealed.wrapped_key)
    secret = aead_open(data_key, sealed.secret_ciphertext, binding.aad("secret")).decode()
    otp = None
    if sealed.otp_ciphertext:
        otp = aead_open(data_key, sealed.otp_ciphertext, binding.aad("otp")).decode()
    return Opened(secret=secret, otp=otp)


@sensitive_variables()
def rewrap(*, binding: Binding, kek_id: str, wrapped_key: bytes) -> tuple[str, bytes] | None:
    """Re-wrap a data key under the current KEK: (new kek id, new wrapped key), or None when
    it is already wrapped under the current KEK."""
    ring = keyring()
    if kek_id == ring.current_id:
        return None
    data_key = _unwrap(ring, binding, kek_id, wrapped_key)
    new_id = ring.current_id
    return new_id, aead_seal(ring.current_key, data_key, _wrap_aad(binding, new_id))
