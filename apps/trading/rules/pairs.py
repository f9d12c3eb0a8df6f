"""The pair's rules for prices: absolute prices on the tick, relative prices against the last
trade, trailing offsets."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal

from apps.kraken.models import AssetPair
from apps.kraken.naming import quantize_price
from apps.trading.models import (
    Side,
)
from apps.trading.rules.base import _ABSOLUTE, _OFFSET, _RELATIVE, MAX_DIGITS, _number
from apps.trading.rules.messages import (
    NO_LAST_TRADE,
    PRICE_INVALID,
    PRICE_POSITIVE,
    PRICE_TICK,
    TRAILING_OFFSET,
)


def resolve_price(
    text: str, *, last: Decimal | None, pair: AssetPair, side: str
) -> tuple[Decimal | None, str | None]:
    """(absolute price, error). Absolute text must sit on the tick; a relative one (`+100`,
    `-1.5%`, against the last trade) is rounded to the tick, down for a buy and up for a sell
    (never a worse price than asked)."""
    text = (text or "").strip()
    if len(text) > MAX_DIGITS:
        return None, PRICE_INVALID
    if match := _ABSOLUTE.match(text):
        value = _number(match.group(1))
        if value is None:
            return None, PRICE_INVALID
        if value <= 0:
            return None, PRICE_POSITIVE
        on_tick = quantize_price(pair, value, rounding=ROUND_DOWN)
        if on_tick != value:
            tick = pair.tick_size or Decimal(1).scaleb(-pair.pair_decimals)
            return None, PRICE_TICK.format(pair=pair.symbol, tick=tick.normalize())
        return value, None
    if match := _RELATIVE.match(text):
        if last is None:
            return None, NO_LAST_TRADE
        sign, amount, percent = match.groups()
        delta = _number(amount)
        if delta is None:
            return None, PRICE_INVALID
        if percent:
            delta = last * delta / Decimal(100)
        value = last + delta if sign == "+" else last - delta
        if value <= 0:
            return None, PRICE_POSITIVE
        rounding = ROUND_DOWN if side == Side.BUY else ROUND_UP
        value = quantize_price(pair, value, rounding=rounding)
        if value <= 0:
            return None, PRICE_POSITIVE
        return value, None
    return None, PRICE_INVALID


def trailing_offset(text: str, *, pair: AssetPair) -> tuple[str | None, str | None]:
    """Kraken's trailing offset (`+50`, `+1.5%`) from `50`, `+50`, `1.5%`, or an error."""
    match = _OFFSET.match(text or "") if len(text or "") <= MAX_DIGITS else None
    if not match:
        return None, TRAILING_OFFSET
    amount = _number(match.group(1))
    if amount is None or amount <= 0:
        return None, TRAILING_OFFSET
    if match.group(2):
        return f"+{amount.normalize():f}%", None
    on_tick = quantize_price(pair, amount, rounding=ROUND_DOWN)
    if on_tick != amount:
        tick = pair.tick_size or Decimal(1).scaleb(-pair.pair_decimals)
        return None, PRICE_TICK.format(pair=pair.symbol, tick=tick.normalize())
    return f"+{amount.normalize():f}", None
