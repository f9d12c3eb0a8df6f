"""The keyring and AES-256-GCM, for every secret the portal keeps at rest (API secrets in the
vault, authenticator keys in accounts). Pure functions and settings; imports no app.

`PORTAL_KEYRING` is `"id1:base64key,id2:base64key"`: the first key-encryption key (KEK) seals,
every KEK opens, so a new KEK is put first and the old ones stay until everything sealed under
them has been re-wrapped. With no keyring, a malformed one or a wrong key, every function here
raises; nothing ever falls back to storing or returning plaintext.

`aead_seal` prepends a fresh 96-bit nonce to the ciphertext; `aead_open` authenticates the
ciphertext against the associated data the caller binds it to (which row, which purpose), so a
ciphertext copied elsewhere fails instead of decrypting there.
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
KEK_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

KEYRING_UNAVAILABLE = (
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


class CryptoError(Exception):
    """Base class: a secret could not be sealed or opened. Messages never hold secrets."""


class KeyringUnavailable(CryptoError):
    """No keyring is configured."""


class CryptoKeyError(CryptoError):
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
        raise CryptoKeyError(KEK_UNKNOWN.format(kek_id=kek_id))

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
            raise CryptoKeyError(KEYRING_MALFORMED)
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CryptoKeyError(KEYRING_MALFORMED) from None
        if len(key) != KEY_BYTES:
            raise CryptoKeyError(KEYRING_MALFORMED)
        keys.append((key_id, key))
    if not keys:
        raise KeyringUnavailable(KEYRING_UNAVAILABLE)
    return Keyring(tuple(keys))


def keyring() -> Keyring:
    """The configured keyring; raises KeyringUnavailable or CryptoKeyError, never returns empty."""
    value = getattr(settings, "PORTAL_KEYRING", "") or ""
    if not value.strip():
        raise KeyringUnavailable(KEYRING_UNAVAILABLE)
    return _parse_keyring(value)


def keyring_check() -> str:
    """The current KEK id, after validating the whole keyring (for start-up and forms)."""
    return keyring().current_id


def generate_kek() -> str:
    """A fresh base64 KEK for a `PORTAL_KEYRING` entry."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def data_key_new() -> bytes:
    """A fresh 256-bit key for one sealed record (envelope encryption's data key)."""
    return AESGCM.generate_key(bit_length=256)


@sensitive_variables()
def aead_seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM under `key`, bound to `aad`: nonce followed by ciphertext and tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


@sensitive_variables()
def aead_open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """The plaintext `aead_seal` sealed with the same key and `aad`; CryptoKeyError otherwise."""
    blob = bytes(blob)
    if len(blob) <= NONCE_BYTES:
        raise CryptoKeyError(DECRYPT_FAILED)
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise CryptoKeyError(DECRYPT_FAILED) from None
