"""Turn a symbol's stored state into what templates show: formatted once, never per viewer.

The same functions serve the feeder (which renders each fragment once per update) and the HTTP
pages (which render the same partials from the state in Redis), so a page and its live updates
cannot disagree. Amounts stay Decimal; they become text only here, at the pair's precision.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from apps.market.store import symbol_slug

SPARK_POINTS = 40
SPARK_WIDTH = 120
SPARK_HEIGHT = 32
HUNDRED = Decimal(100)
BPS = Decimal(10000)


def dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def fmt(value: Any, places: int, *, grouped: bool = True) -> str:
    if value is None or value == "":
        return "—"
    number = dec(value)
    return f"{number:,.{places}f}" if grouped else f"{number:.{places}f}"


def signed_pct(value: Any) -> str:
    if value is None:
        return "—"
    number = dec(value)
    return f"{number:+.2f}%"


def direction(current: Any, previous: Any) -> str:
    """`up`, `down` or `` for the flash class of a tile."""
    if current is None or previous is None:
        return ""
    a, b = dec(current), dec(previous)
    return "up" if a > b else "down" if a < b else ""


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


def tile(state: dict[str, Any], previous_last: Any = None) -> dict[str, Any]:
    ticker = state.get("ticker") or {}
    pd = int(state["price_decimals"])
    change = ticker.get("change_pct")
    status = pair_status(state)
    return {
        "status": status["status"] if status["restricted"] else "",
        "status_label": status["label"] if status["restricted"] else "",
        "symbol": state["symbol"],
        "slug": state["slug"],
        "last": fmt(ticker.get("last"), pd),
        "bid": fmt(ticker.get("bid"), pd),
        "ask": fmt(ticker.get("ask"), pd),
        "change_pct": signed_pct(change),
        "trend": "" if change is None else ("up" if dec(change) >= 0 else "down"),
        "flash": direction(ticker.get("last"), previous_last),
        "spark": sparkline(state.get("candles") or []),
        "t": stamp(state, "tile"),
    }


def ladder(state: dict[str, Any]) -> dict[str, Any]:
    pd, qd = int(state["price_decimals"]), int(state["qty_decimals"])

    def rows(levels: list[list[Any]]) -> list[dict[str, str]]:
        total = Decimal(0)
        out = []
        for price, qty in levels:
            total += dec(qty)
            out.append({"price": fmt(price, pd), "qty": fmt(qty, qd), "total": fmt(total, qd)})
        return out

    asks = rows(state.get("asks") or [])
    bids = rows(state.get("bids") or [])
    spread = spread_bps = "—"
    if state.get("asks") and state.get("bids"):
        best_ask, best_bid = dec(state["asks"][0][0]), dec(state["bids"][0][0])
        gap = best_ask - best_bid
        spread = fmt(gap, pd)
        mid = (best_ask + best_bid) / 2
        spread_bps = f"{gap / mid * BPS:.1f}" if mid else "—"
    return {
        "slug": state["slug"],
        "asks": list(reversed(asks)),  # highest ask on top, best ask next to the spread
        "bids": bids,
        "spread": spread,
        "spread_bps": spread_bps,
        "ready": bool(state.get("book_ready")),
        "t": stamp(state, "ladder"),
    }


def trades(state: dict[str, Any]) -> dict[str, Any]:
    pd, qd = int(state["price_decimals"]), int(state["qty_decimals"])
    return {
        "slug": state["slug"],
        "trades": [
            {
                "price": fmt(t["price"], pd),
                "qty": fmt(t["qty"], qd),
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
    pd, qd = int(state["price_decimals"]), int(state["qty_decimals"])
    change = ticker.get("change_pct")
    return {
        "slug": state["slug"],
        "symbol": state["symbol"],
        "last": fmt(ticker.get("last"), pd),
        "change": fmt(ticker.get("change"), pd),
        "change_pct": signed_pct(change),
        "trend": "" if change is None else ("up" if dec(change) >= 0 else "down"),
        "high": fmt(ticker.get("high"), pd),
        "low": fmt(ticker.get("low"), pd),
        "vwap": fmt(ticker.get("vwap"), pd),
        "volume": fmt(ticker.get("volume"), qd),
        "bid": fmt(ticker.get("bid"), pd),
        "ask": fmt(ticker.get("ask"), pd),
        "t": stamp(state, "stats"),
    }


def candle_points(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Candles for the chart, prices as exact decimal strings (the script makes numbers)."""
    return [
        {
            "time": int(c["time"]),
            "open": format(dec(c["open"]), "f"),
            "high": format(dec(c["high"]), "f"),
            "low": format(dec(c["low"]), "f"),
            "close": format(dec(c["close"]), "f"),
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
