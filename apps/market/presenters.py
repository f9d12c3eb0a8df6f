"""Turn a symbol's stored state into what templates show: formatted once, never per viewer.

The same functions serve the feeder (which renders each fragment once per update) and the HTTP
pages (which render the same partials from the state in Redis), so a page and its live updates
cannot disagree. Amounts stay Decimal; they become text only here, at the pair's precision.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from apps.core import amounts
from apps.market.store import symbol_slug

SPARK_POINTS = 40
SPARK_WIDTH = 120
SPARK_HEIGHT = 32
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def dec(value: Any) -> Decimal:
    """A stored amount (Decimal, or its exact string) as a Decimal; floats refused."""
    return amounts.to_decimal(value)


def decimals(state: dict[str, Any]) -> amounts.PairDecimals:
    return amounts.PairDecimals.from_mapping(state)


def signed_pct(value: Any) -> str:
    return amounts.format_percent(value)


def sort_key(value: Any, places: int | None = None) -> str:
    """A number for the overview table's client-side sort and the depth chart: exact text, or
    rounded to `places` where the exact value is a long quotient; empty sorts last."""
    if value is None or value == "":
        return ""
    return amounts.to_wire(value, places) if places is not None else format(dec(value), "f")


def direction(current: Any, previous: Any) -> str:
    """`up`, `down` or `` for the flash class of a tile."""
    if current is None or previous is None:
        return ""
    a, b = dec(current), dec(previous)
    return "up" if a > b else "down" if a < b else ""


def spread_bps(bid: Any, ask: Any) -> Decimal | None:
    """The spread relative to the mid price, in basis points."""
    if bid is None or ask is None:
        return None
    best_bid, best_ask = dec(bid), dec(ask)
    return amounts.ratio_bps(best_ask - best_bid, (best_ask + best_bid) / 2)


def sparkline(candles: list[dict[str, Any]]) -> str:
    """Polyline points of the last closes, scaled into the SVG's view box (geometry, not money)."""
    closes = [dec(c["close"]) for c in candles[-SPARK_POINTS:]]
    if len(closes) < 2:
        return ""
    low, high = min(closes), max(closes)
    span = (high - low) or Decimal(1)
    step = Decimal(SPARK_WIDTH) / (len(closes) - 1)
    points = []
    for index, close in enumerate(closes):
        x = step * index
        y = Decimal(SPARK_HEIGHT) - (close - low) / span * Decimal(SPARK_HEIGHT - 2) - 1
        points.append(f"{x:.1f},{y:.1f}")
    return " ".join(points)


def stamp(state: dict[str, Any], part: str = "") -> int:
    """Milliseconds since the epoch at which the feeder received the newest message shown."""
    when = (state.get("stamps") or {}).get(part) or state.get("received_at") or 0
    return int(float(when) * 1000)


def feed(*, heard_at: float, down: Iterable[str], now: float | None = None) -> dict[str, Any]:
    """The feed's pulse for live pages: how long ago Kraken was last heard from (ms; -1 if
    never) and the slugs of the pairs whose books are being rebuilt. An age, not a time: the
    browser's clock need not agree with ours."""
    now = time.time() if now is None else now
    age = max(0, int((now - heard_at) * 1000)) if heard_at else -1
    return {"age": age, "down": " ".join(symbol_slug(s) for s in down)}


# Kraken's status words (system: SystemStatus and the WS `status` frame; pairs: AssetPairs and
# the `instrument` channel), as people read them.
STATUS_LABELS = {
    "online": "Online",
    "maintenance": "Maintenance",
    "cancel_only": "Cancel only",
    "post_only": "Post only",
    "limit_only": "Limit only",
    "reduce_only": "Reduce only",
    "delisted": "Delisted",
    "work_in_progress": "Work in progress",
}
SYSTEM_MESSAGES = {
    "maintenance": "Kraken is in maintenance: no orders can be placed or cancelled, and no "
    "trades occur. Prices shown are the last before it began.",
    "cancel_only": "Kraken is in cancel-only mode: open orders can be cancelled, but no new "
    "orders can be placed and no trades occur.",
    "post_only": "Kraken is in post-only mode: only post-only limit orders can be placed.",
}
SYSTEM_MESSAGE_OTHER = "Kraken reports its status as “{label}”: trading may be restricted."


def status_label(status: str | None) -> str:
    if not status:
        return ""
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def exchange_status(status: str | None) -> dict[str, Any]:
    """The system status banner: shown only while Kraken is not `online` (unknown shows
    nothing: the feed's own badge already says when the portal has not heard from Kraken)."""
    restricted = bool(status) and status != "online"
    label = status_label(status)
    message = ""
    if restricted and status is not None:
        message = SYSTEM_MESSAGES.get(status) or SYSTEM_MESSAGE_OTHER.format(label=label)
    return {"status": status or "", "label": label, "restricted": restricted, "message": message}


def pair_status(state: dict[str, Any]) -> dict[str, Any]:
    """A pair's own status, shown on that pair while it is not `online`."""
    status = state.get("status") or ""
    return {
        "slug": state["slug"],
        "symbol": state["symbol"],
        "status": status,
        "label": status_label(status),
        "restricted": bool(status) and status != "online",
    }


def _volumes(ticker: dict[str, Any], pair: amounts.PairDecimals) -> tuple[Any, Any]:
    """24h volume in base (Kraken's `volume`) and in quote (volume * VWAP), unrounded."""
    volume, vwap = ticker.get("volume"), ticker.get("vwap")
    quote = dec(volume) * dec(vwap) if volume is not None and vwap is not None else None
    return volume, quote


def tile(state: dict[str, Any], previous_last: Any = None) -> dict[str, Any]:
    """One pair on the overview: its tile and its table row show the same values."""
    ticker = state.get("ticker") or {}
    pair = decimals(state)
    change = ticker.get("change_pct")
    status = pair_status(state)
    volume, quote_volume = _volumes(ticker, pair)
    bps = spread_bps(ticker.get("bid"), ticker.get("ask"))
    return {
        "status": status["status"] if status["restricted"] else "",
        "status_label": status["label"] if status["restricted"] else "",
        "symbol": state["symbol"],
        "slug": state["slug"],
        "base": pair.base,
        "quote": pair.quote,
        "last": amounts.format_price(ticker.get("last"), pair),
        "bid": amounts.format_price(ticker.get("bid"), pair),
        "ask": amounts.format_price(ticker.get("ask"), pair),
        "high": amounts.format_price(ticker.get("high"), pair),
        "low": amounts.format_price(ticker.get("low"), pair),
        "change_pct": signed_pct(change),
        "volume_base": amounts.format_base(volume, pair),
        "volume_quote": amounts.format_quote(quote_volume, pair),
        "spread_bps": amounts.format_number(bps, 1),
        "trend": "" if change is None else ("up" if dec(change) >= 0 else "down"),
        "flash": direction(ticker.get("last"), previous_last),
        "spark": sparkline(state.get("candles") or []),
        # Exact numbers for the table's client-side sort.
        "keys": {
            "last": sort_key(ticker.get("last")),
            "change": sort_key(change),
            "volume": sort_key(volume),
            "quote-volume": sort_key(quote_volume, 2),
            "high": sort_key(ticker.get("high")),
            "low": sort_key(ticker.get("low")),
            "spread": sort_key(bps, 3),
        },
        "t": stamp(state, "tile"),
    }


def ladder(state: dict[str, Any]) -> dict[str, Any]:
    pair = decimals(state)

    def rows(levels: list[list[Any]]) -> list[dict[str, str]]:
        total = Decimal(0)
        out = []
        for price, qty in levels:
            total += dec(qty)
            out.append(
                {
                    "price": amounts.format_price(price, pair),
                    "qty": amounts.format_size(qty, pair),
                    "total": amounts.format_size(total, pair),
                    # Exact, ungrouped numbers for the depth chart.
                    "p": sort_key(price),
                    "cum": sort_key(total),
                }
            )
        return out

    asks = rows(state.get("asks") or [])
    bids = rows(state.get("bids") or [])
    spread = bps_text = amounts.MISSING
    if state.get("asks") and state.get("bids"):
        best_ask, best_bid = dec(state["asks"][0][0]), dec(state["bids"][0][0])
        spread = amounts.format_price(best_ask - best_bid, pair)
        bps_text = amounts.format_number(spread_bps(best_bid, best_ask), 1)
    return {
        "slug": state["slug"],
        "asks": list(reversed(asks)),  # highest ask on top, best ask next to the spread
        "bids": bids,
        "spread": spread,
        "spread_bps": bps_text,
        "base": pair.base,
        "ready": bool(state.get("book_ready")),
        "t": stamp(state, "ladder"),
    }


def trades(state: dict[str, Any]) -> dict[str, Any]:
    pair = decimals(state)
    return {
        "slug": state["slug"],
        "trades": [
            {
                "price": amounts.format_price(t["price"], pair),
                "qty": amounts.format_size(t["qty"], pair),
                "side": t.get("side", ""),
                "time": t.get("time", ""),
                "clock": (t.get("time") or "")[11:19],
            }
            for t in state.get("trades") or []
        ],
        "t": stamp(state, "trades"),
    }


def stats(state: dict[str, Any]) -> dict[str, Any]:
    ticker = state.get("ticker") or {}
    pair = decimals(state)
    change = ticker.get("change_pct")
    volume, quote_volume = _volumes(ticker, pair)
    return {
        "slug": state["slug"],
        "symbol": state["symbol"],
        "quote": pair.quote,
        "last": amounts.format_price(ticker.get("last"), pair),
        "change": amounts.format_number(
            ticker.get("change"), pair.price_decimals, signed=ticker.get("change") is not None
        ),
        "change_pct": signed_pct(change),
        "trend": "" if change is None else ("up" if dec(change) >= 0 else "down"),
        "high": amounts.format_price(ticker.get("high"), pair),
        "low": amounts.format_price(ticker.get("low"), pair),
        "vwap": amounts.format_price(ticker.get("vwap"), pair),
        "volume": amounts.format_base(volume, pair),
        "volume_quote": amounts.format_quote(quote_volume, pair),
        "bid": amounts.format_price(ticker.get("bid"), pair),
        "ask": amounts.format_price(ticker.get("ask"), pair),
        "t": stamp(state, "stats"),
    }


def chart_format(state: dict[str, Any]) -> dict[str, Any]:
    """The chart's price format: the pair's tick decimals and the smallest move it shows."""
    pair = decimals(state)
    return {"precision": pair.price_decimals, "minMove": format(pair.price_step, "f")}


# The chart's intervals: (minutes, label). One-minute candles are the live series; the
# others are built from them for the last twelve hours and from Kraken's OHLC before that.
INTERVALS = ((1, "1m"), (5, "5m"), (15, "15m"), (60, "1h"), (240, "4h"), (1440, "1d"))


def aggregate_candles(candles: list[dict[str, Any]], minutes: int) -> list[dict[str, Any]]:
    """One-minute candles merged into buckets of `minutes`, aligned to the epoch (UTC midnight
    for days), as Kraken aligns its own."""
    if minutes == 1:
        return list(candles)
    width = minutes * 60
    buckets: dict[int, dict[str, Any]] = {}
    for candle in sorted(candles, key=lambda c: int(c["time"])):
        begin = int(candle["time"]) // width * width
        bucket = buckets.get(begin)
        high, low, close = dec(candle["high"]), dec(candle["low"]), dec(candle["close"])
        if bucket is None:
            buckets[begin] = {
                "time": begin,
                "open": dec(candle["open"]),
                "high": high,
                "low": low,
                "close": close,
            }
        else:
            bucket["high"] = max(bucket["high"], high)
            bucket["low"] = min(bucket["low"], low)
            bucket["close"] = close
    return [buckets[k] for k in sorted(buckets)]


def chart_candles(
    history: list[dict[str, Any]], minutes_1m: list[dict[str, Any]], minutes: int
) -> list[dict[str, Any]]:
    """The chart's candles of `minutes`: Kraken's history, with every bucket the one-minute
    candles cover built from them instead. The first covered bucket is left to the history
    when the one-minute candles start inside it (they would undercount it)."""
    recent = aggregate_candles(minutes_1m, minutes)
    width = minutes * 60
    if recent and minutes_1m and min(int(c["time"]) for c in minutes_1m) % width:
        recent = recent[1:]
    merged = {int(c["time"]): c for c in history}
    merged.update({int(c["time"]): c for c in recent})
    return candle_points({"candles": [merged[k] for k in sorted(merged)]})


def plain(value: Any) -> str:
    """An amount as a plain decimal string. The store already holds most amounts so (see
    apps.market.store), and a pair page passes hundreds of candle prices: those are returned
    as they are instead of being parsed and printed again."""
    if isinstance(value, str) and _PLAIN_DECIMAL.fullmatch(value):
        return value
    return format(dec(value), "f")


def candle_points(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Candles for the chart, prices as exact decimal strings (the script makes numbers)."""
    return [
        {
            "time": int(c["time"]),
            "open": plain(c["open"]),
            "high": plain(c["high"]),
            "low": plain(c["low"]),
            "close": plain(c["close"]),
        }
        for c in state.get("candles") or []
    ]


def last_candle(state: dict[str, Any]) -> dict[str, Any]:
    points = candle_points({"candles": (state.get("candles") or [])[-1:]})
    return {
        "slug": state["slug"],
        "candle": points[0] if points else None,
        "t": stamp(state, "candle"),
    }
