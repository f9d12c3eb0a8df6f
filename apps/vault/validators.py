"""Format checks for what a member pastes from Kraken. Messages never echo the value."""

from __future__ import annotations

import base64
import binascii
import re

from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

SECRET_BYTES = 64
API_KEY_RE = re.compile(r"^[A-Za-z0-9+/]{40,120}={0,2}$")
OTP_RE = re.compile(r"^[\x21-\x7e]{1,64}$")

API_KEY_FORMAT = (
    "This does not look like a Kraken API key: paste the public “API key” (a base64 string, "
    "usually 56 characters) exactly as Kraken shows it."
)
PRIVATE_KEY_FORMAT = (
    "This does not look like a Kraken private key: it is the base64 text of 64 bytes "
    "(88 characters ending in “==”) that Kraken shows once, when the key is created."
)
PRIVATE_KEY_IS_API_KEY = "The private key must not be the same as the API key."
OTP_FORMAT = (
    "The key password must be 1 to 64 printable characters without spaces (leave it empty if "
    "the key has no two-factor password)."
)


def clean_api_key(value: str) -> str:
    value = "".join(value.split())
    if not API_KEY_RE.match(value):
        raise ValidationError(API_KEY_FORMAT, code="api_key_format")
    try:
        base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(API_KEY_FORMAT, code="api_key_format") from None
    return value


@sensitive_variables()
def clean_secret(value: str) -> str:
    value = "".join(value.split())
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(PRIVATE_KEY_FORMAT, code="secret_format") from None
    if len(raw) != SECRET_BYTES:
        raise ValidationError(PRIVATE_KEY_FORMAT, code="secret_format")
    return value


@sensitive_variables()
def clean_otp(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not OTP_RE.match(value):
        raise ValidationError(OTP_FORMAT, code="otp_format")
    return value


@sensitive_variables()
def clean_key_pair(*, api_key: str, secret: str, otp: str | None) -> tuple[str, str, str | None]:
    """All three checks at once, with errors keyed by field (for services called without a
    form, like the demo-data command)."""
    errors: dict[str, list[str]] = {}
    cleaned_key = cleaned_secret = ""
    cleaned_otp = None
    try:
        cleaned_key = clean_api_key(api_key)
    except ValidationError as error:
        errors["api_key"] = error.messages
    try:
        cleaned_secret = clean_secret(secret)
    except ValidationError as error:
        errors["secret"] = error.messages
    try:
        cleaned_otp = clean_otp(otp)
    except ValidationError as error:
        errors["otp"] = error.messages
    if not errors and cleaned_key == cleaned_secret:
        errors["secret"] = [PRIVATE_KEY_IS_API_KEY]
    if errors:
        raise ValidationError(errors)
    return cleaned_key, cleaned_secret, cleaned_otp
