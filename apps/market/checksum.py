"""Kraken's order-book checksum (CRC32 over the top ten levels), written from the docs alone.

Kraken: "The checksum is always calculated over the top 10 price levels regardless of
subscription depth." Asks are taken lowest first, bids highest first; each price and quantity is
written with the pair's precision, the decimal point removed and leading zeros stripped, and the
CRC32 of asks followed by bids is the unsigned checksum. The same string rules give v1's checksum
when the v1 wire strings (already at the pair's precision) are used.

This module must stay independent of the sandbox's implementation: two independent readings of
the docs that agree are the evidence that both are right.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from decimal import Decimal

CHECKSUM_LEVELS = 10

type Level = tuple[Decimal, Decimal]


def _digits(value: Decimal, places: int) -> str:
    # Formatting at the pair's precision restores trailing zeros a JSON number dropped
    # ("4.0" must count as "4.00000000").
    text = f"{value:.{places}f}".replace(".", "").lstrip("0")
    return text


def checksum_string(
    asks: Iterable[Level], bids: Iterable[Level], *, price_decimals: int, qty_decimals: int
) -> str:
    """The text Kraken hashes; `asks` lowest first and `bids` highest first, as in a book."""
    parts: list[str] = []
    for side in (asks, bids):
        for index, (price, qty) in enumerate(side):
            if index == CHECKSUM_LEVELS:
                break
            parts.append(_digits(price, price_decimals))
            parts.append(_digits(qty, qty_decimals))
    return "".join(parts)


def book_checksum(
    asks: Iterable[Level], bids: Iterable[Level], *, price_decimals: int, qty_decimals: int
) -> int:
    """The unsigned 32-bit CRC32 Kraken sends in `checksum` (v2) or `c` (v1)."""
    text = checksum_string(asks, bids, price_decimals=price_decimals, qty_decimals=qty_decimals)
    return zlib.crc32(text.encode("ascii")) & 0xFFFFFFFF
