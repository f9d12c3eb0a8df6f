"""Small shared helpers: wire JSON with exact Decimals, Kraken-shaped ids, time formatting."""

from __future__ import annotations

import base64
import json
import random
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

# Decimals are smuggled through the C JSON encoder as marked strings and then unquoted, so
# numbers keep their exact wire digits (book checksums depend on trailing zeros).
_MARK = "\ue000"
_MARK_RE = re.compile('"' + _MARK + r'(-?[0-9.eE+-]+)"')


def _default(o: object) -> object:
    if isinstance(o, Decimal):
        return _MARK + format(o, "f")
    if isinstance(o, RawNum):
        return _MARK + o.text
    raise TypeError(f"not serialisable: {type(o).__name__}")


class RawNum:
    """A JSON number emitted verbatim (e.g. a float timestamp as "1688666559.8974")."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def dumps(obj: Any) -> str:
    text = json.dumps(obj, default=_default, ensure_ascii=False, separators=(",", ":"))
    if _MARK in text:
        text = _MARK_RE.sub(r"\1", text)
    return text


def ts_num(t: float) -> RawNum:
    """Kraken REST timestamps: seconds as a JSON number with 4 decimals."""
    return RawNum(f"{t:.4f}")


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_s(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc1123(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%a, %d %b %y %H:%M:%S +0000")


def parse_rfc3339(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def to_decimal(value: object) -> Decimal | None:
    """Strict numeric parse: finite decimal strings/ints only (no floats' binary noise)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    elif isinstance(value, str):
        s = value.strip()
        if not s or not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s):
            return None
        try:
            d = Decimal(s)
        except InvalidOperation:
            return None
    else:
        return None
    return d if d.is_finite() else None


def decimals_of(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


class IdGen:
    """Kraken-shaped ids (``OXXXXX-XXXXX-XXXXXX``), deterministic under the seed."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._generation = 0
        self._rng = random.Random(seed ^ 0x5EED)  # noqa: S311 - not crypto, ids only
        self._trade_seq = 40000000

    def kid(self, prefix: str) -> str:
        # Base32 of 10 random bytes is exactly 16 characters of Kraken's id alphabet.
        b = base64.b32encode(self._rng.randbytes(10)).decode()
        return f"{prefix}{b[:5]}-{b[5:10]}-{b[10:16]}"

    def refid(self, prefix: str = "F") -> str:
        # Funding refids look like "FTQcuak-V6Za8qrWnhzTx67yYHz8Tg" in Kraken's examples.
        alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        a = "".join(self._rng.choice(alnum) for _ in range(6))
        b = "".join(self._rng.choice(alnum) for _ in range(22))
        return f"{prefix}{a}-{b}"

    def token(self) -> str:
        alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self._rng.choice(alnum) for _ in range(43))

    def trade_seq(self) -> int:
        self._trade_seq += 1
        return self._trade_seq

    def state(self) -> dict[str, Any]:
        return {"trade_seq": self._trade_seq, "generation": self._generation}

    def restore(self, data: dict[str, Any]) -> None:
        self._trade_seq = int(data.get("trade_seq", self._trade_seq))
        # A restart with the same seed must not replay the id sequence already used by the
        # restored orders/trades/ledgers: every restore starts a new id generation.
        self._generation = int(data.get("generation", 0)) + 1
        self._rng = random.Random(f"{self._seed}:ids:{self._generation}")  # noqa: S311
