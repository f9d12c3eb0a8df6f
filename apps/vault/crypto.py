"""Envelope encryption for stored Kraken API secrets.

Each credential gets a fresh 256-bit data key. The secret (and the optional API-key password)
are sealed with AES-256-GCM under that data key; the data key itself is sealed ("wrapped") with
AES-256-GCM under a key-encryption key (KEK) from `settings.PORTAL_KEYRING`, and the KEK's id is
stored beside the wrapped key. Rotating the KEK therefore re-wraps 32 bytes per row and never
touches the secrets.

Every seal binds the credential's id, organization id and owner id as associated data, so a
ciphertext copied onto another row fails authentication instead of decrypting there. That is
why a row must exist (have its primary key) before its secret is sealed.

`PORTAL_KEYRING` is `"id1:base64key,id2:base64key"`: the first KEK seals, every KEK opens. With
no keyring, a malformed one or a wrong key, every function here raises; nothing ever falls back
to storing or returning plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

NONCE_BYTES = 12
KEY_BYTES = 32
FORMAT = b"kraken-portal/vault/v1"
KEK_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

VAULT_UNAVAILABLE = (
    "The credential vault is not configured (PORTAL_KEYRING is empty), so API secrets can "
    "be neither stored nor used."
)
KEYRING_MALFORMED = (
    "PORTAL_KEYRING is malformed: expected 'id:base64key,...' with unique ids and 32-byte keys."
)
KEK_UNKNOWN = "The key that sealed this credential ({kek_id}) is not in PORTAL_KEYRING."
DECRYPT_FAILED = (
    "This credential could not be decrypted: the keyring does not match, or the stored "
    "ciphertext does not belong to this credential."
)


class VaultError(Exception):
    """Base class: the vault refused to seal or open a secret. Messages never hold secrets."""


class VaultUnavailable(VaultError):
    """No keyring is configured."""


class VaultKeyError(VaultError):
    """The keyring is malformed or lacks the right key, or a ciphertext fails authentication."""


@dataclass(frozen=True)
class Keyring:
    keys: tuple[tuple[str, bytes], ...]

    @property
    def current_id(self) -> str:
        return self.keys[0][0]

    @property
    def current_key(self) -> bytes:
        return self.keys[0][1]

    def get(self, kek_id: str) -> bytes:
        for key_id, key in self.keys:
            if key_id == kek_id:
                return key
        raise VaultKeyError(KEK_UNKNOWN.format(kek_id=kek_id))

    def __repr__(self) -> str:  # Never print key material, even in a debugger or traceback.
        return f"Keyring(ids={[key_id for key_id, _ in self.keys]!r})"


@lru_cache(maxsize=8)
def _parse_keyring(value: str) -> Keyring:
    keys: list[tuple[str, bytes]] = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not KEK_ID_RE.match(key_id) or any(k == key_id for k, _ in keys):
            raise VaultKeyError(KEYRING_MALFORMED)
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise VaultKeyError(KEYRING_MALFORMED) from None
        if len(key) != KEY_BYTES:
            raise VaultKeyError(KEYRING_MALFORMED)
        keys.append((key_id, key))
    if not keys:
        raise VaultUnavailable(VAULT_UNAVAILABLE)
    return Keyring(tuple(keys))


def keyring() -> Keyring:
    """The configured keyring; raises VaultUnavailable or VaultKeyError, never returns empty."""
    value = getattr(settings, "PORTAL_KEYRING", "") or ""
    if not value.strip():
        raise VaultUnavailable(VAULT_UNAVAILABLE)
    return _parse_keyring(value)


def keyring_check() -> str:
    """The current KEK id, after validating the whole keyring (for start-up and forms)."""
    return keyring().current_id


def generate_kek() -> str:
    """A fresh base64 KEK for a `PORTAL_KEYRING` entry."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


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


@sensitive_variables()
def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


@sensitive_variables()
def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    blob = bytes(blob)
    if len(blob) <= NONCE_BYTES:
        raise VaultKeyError(DECRYPT_FAILED)
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise VaultKeyError(DECRYPT_FAILED) from None


def _wrap_aad(binding: Binding, kek_id: str) -> bytes:
    return binding.aad("data-key") + b"|kek=" + kek_id.encode()


@sensitive_variables()
def _unwrap(ring: Keyring, binding: Binding, kek_id: str, wrapped_key: bytes) -> bytes:
    return _open(ring.get(kek_id), wrapped_key, _wrap_aad(binding, kek_id))


@sensitive_variables()
def seal(*, binding: Binding, secret: str, otp: str | None) -> Sealed:
    """Encrypt a secret (and optional API-key password) for the row `binding` names."""
    ring = keyring()
    data_key = AESGCM.generate_key(bit_length=256)
    kek_id = ring.current_id
    return Sealed(
        kek_id=kek_id,
        wrapped_key=_seal(ring.current_key, data_key, _wrap_aad(binding, kek_id)),
        secret_ciphertext=_seal(data_key, secret.encode(), binding.aad("secret")),
        otp_ciphertext=_seal(data_key, otp.encode(), binding.aad("otp")) if otp else None,
    )


@sensitive_variables()
def open_sealed(*, binding: Binding, sealed: Sealed) -> Opened:
    """Decrypt what `seal` produced for the same row; raises VaultKeyError on any mismatch."""
    ring = keyring()
    data_key = _unwrap(ring, binding, sealed.kek_id, sealed.wrapped_key)
    secret = _open(data_key, sealed.secret_ciphertext, binding.aad("secret")).decode()
    otp = None
    if sealed.otp_ciphertext:
        otp = _open(data_key, sealed.otp_ciphertext, binding.aad("otp")).decode()
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
    return new_id, _seal(ring.current_key, data_key, _wrap_aad(binding, new_id))
