"""Kraken error envelope helpers."""

from __future__ import annotations


class KrakenError(Exception):
    """Raised anywhere in request handling; rendered as ``{"error": [error]}`` with HTTP 200."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def invalid(field: str | None = None) -> KrakenError:
    return KrakenError("EGeneral:Invalid arguments" + (f":{field}" if field else ""))
