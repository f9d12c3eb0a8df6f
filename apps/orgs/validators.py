"""Shapes of the organization's settings and of Kraken account ids. Each `normalize_*` turns what
a person typed into the stored form; the validators then check the stored form (models run them
in `full_clean`, so the services' rules and the forms' messages are one)."""

from __future__ import annotations

import re
import zoneinfo

from django.core.exceptions import ValidationError

from apps.kraken.naming import normalize_asset

ASSET_CODE_INVALID = "Enter an asset code such as USD, EUR or BTC."
TIME_ZONE_INVALID = "Enter a time zone name such as Europe/London or America/New_York."
KRAKEN_ID_INVALID = (
    "A Kraken account id (IIBAN) is 16 letters and digits, e.g. AA96 N74G CGEF N8KI "
    "(Settings → Account on Kraken)."
)

_ASSET_CODE = re.compile(r"[A-Z0-9]{2,12}")
# Kraken's user identifier: the spec's `user_iiban` is a 16-character string (example
# AA96N74GCGEFN8KI, spot-rest/partials/parameters/query/user_iiban.yaml). Kraken shows it in
# groups of four; the checksum rule is not published, so only the shape is checked.
_KRAKEN_ID = re.compile(r"[A-Z0-9]{16}")


def normalize_asset_code(value: str) -> str:
    """'xbt', ' ZUSD ' → 'BTC', 'USD' (Kraken's legacy spellings become the portal's)."""
    code = value.strip().upper()
    return normalize_asset(code) if code else code


def validate_asset_code(value: str) -> None:
    if not _ASSET_CODE.fullmatch(value) or normalize_asset(value) != value:
        raise ValidationError(ASSET_CODE_INVALID, code="asset_code")


def validate_time_zone(value: str) -> None:
    # available_timezones() reads the tz database once; a name outside it (or a path such as
    # "../etc/passwd", which ZoneInfo would try to open) is refused.
    if value not in _time_zones():
        raise ValidationError(TIME_ZONE_INVALID, code="time_zone")


_ZONES: frozenset[str] | None = None


def _time_zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(zoneinfo.available_timezones())
    return _ZONES


def normalize_kraken_account_id(value: str) -> str:
    """'aa96 n74g-cgef n8ki' → 'AA96N74GCGEFN8KI'."""
    return re.sub(r"[\s-]", "", value).upper()


def validate_kraken_account_id(value: str) -> None:
    if value and not _KRAKEN_ID.fullmatch(value):
        raise ValidationError(KRAKEN_ID_INVALID, code="kraken_id")
