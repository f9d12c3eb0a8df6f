"""Public REST endpoints (``/0/public/<Method>``)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .engine import Engine
from .errors import KrakenError, invalid
from .market import OHLC_INTERVALS
from .pairs import ASSETS, PAIRS, Pair, fmt, resolve_asset, resolve_pair
from .params import Params, check_known, opt_dec, opt_int, opt_str, str_list
from .util import RawNum, rfc1123, rfc3339_s

Handler = Callable[[Engine, Params], Any]


def _pairs_param(p: Params, *, required: bool) -> list[Pair]:
    names = str_list(p, "pair")
    if not names:
        if required:
            raise invalid("pair")
        return list(PAIRS.values())
    out: list[Pair] = []
    for n in names:
        pair = resolve_pair(n)
        if pair is None:
            raise KrakenError("EQuery:Unknown asset pair")
        out.append(pair)
    return out


def time_(engine: Engine, p: Params) -> Any:
    check_known(p, frozenset())
    now = engine.now()
    return {"unixtime": int(now), "rfc1123": rfc1123(now)}


def system_status(engine: Engine, p: Params) -> Any:
    check_known(p, frozenset())
    return {"status": engine.status, "timestamp": rfc3339_s(engine.now())}


def assets(engine: Engine, p: Params) -> Any:
    check_known(p, frozenset({"asset", "aclass"}))
    aclass = opt_str(p, "aclass")
    if aclass not in (None, "currency", "tokenized_asset"):
        raise invalid("aclass")
    names = str_list(p, "asset")
    chosen = list(ASSETS.values())
    if names:
        chosen = []
        for n in names:
            a = resolve_asset(n)
            if a is None:
                raise KrakenError("EQuery:Unknown asset")
            chosen.append(a)
    if aclass == "tokenized_asset":
        chosen = []
    return {
        a.id: {
            "aclass": a.aclass,
            "altname": a.altname,
            "decimals": a.decimals,
            "display_decimals": a.display_decimals,
            "collateral_value": RawNum(format(a.collateral_value, "f")),
            "status": "enabled",
        }
        for a in chosen
    }


def _fee_list(schedule: list[tuple[int, Decimal]]) -> list[list[Any]]:
    return [[vol, RawNum(format(pct.normalize(), "f"))] for vol, pct in schedule]


def pair_info(pair: Pair, info: str = "info", status: str = "online") -> dict[str, Any]:
    fees = _fee_list(pair.taker_fees)
    fees_maker = _fee_list(pair.maker_fees)
    if info == "leverage":
        return {"leverage_buy": pair.leverage, "leverage_sell": pair.leverage}
    if info == "fees":
        return {"fees": fees, "fees_maker": fees_maker, "fee_volume_currency": "ZUSD"}
    if info == "margin":
        return {"margin_call": 80, "margin_stop": 40}
    return {
        "altname": pair.altname,
        "wsname": pair.wsname,
        "aclass_base": "currency",
        "base": pair.base,
        "aclass_quote": "currency",
        "quote": pair.quote,
        "lot": "unit",
        "cost_decimals": pair.cost_decimals,
        "pair_decimals": pair.pair_decimals,
        "lot_decimals": pair.lot_decimals,
        "lot_multiplier": 1,
        "leverage_buy": pair.leverage,
        "leverage_sell": pair.leverage,
        "fees": fees,
        "fees_maker": fees_maker,
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": format(pair.ordermin, "f"),
        "costmin": format(pair.costmin, "f"),
        "tick_size": format(pair.tick_size, "f"),
        "status": status,
        "long_position_limit": 250 if pair.leverage else 0,
        "short_position_limit": 200 if pair.leverage else 0,
    }


def asset_pairs(engine: Engine, p: Params) -> Any:
    check_known(p, frozenset({"pair", "info", "aclass_base", "country_code"}))
    info = opt_str(p, "info") or "info"
    if info not in ("info", "leverage", "fees", "margin"):
        raise invalid("info")
    base = opt_str(p, "aclass_base")
    if base not in (None, "currency", "tokenized_asset"):
        raise invalid("aclass_base")
    pairs = _pairs_param(p, required=False)
    if base == "tokenized_asset":
        pairs = []
    return {
        pair.id: pair_info(pair, info, engine.pair_status.get(pair.id, "online")) for pair in pairs
    }


def ticker(engine: Engine, p: Params) -> Any:
    check_known(p, frozenset({"pair", "asset_class"}))
    out: dict[str, Any] = {}
    now = engine.now()
    midnight = now - (now % 86400)
    for pair in _pairs_param(p, required=False):
        m = engine.markets[pair.id]
        lot = pair.lot_decimals
        pd = pair.pair_decimals
        bids = engine.book_levels(pair.id, "bid", 1)
        asks = engine.book_levels(pair.id, "ask", 1)
        ask, askq = asks[0] if asks else (m.mid, Decimal(0))
        bid, bidq = bids[0] if bids else (m.mid, Decimal(0))
        v_t, p_t, t_t, l_t, h_t, o_t = m.stats(midnight)
        v_d, p_d, t_d, l_d, h_d, _ = m.stats(now - 86400)
        out[pair.id] = {
            "a": [fmt(ask, pd), str(int(askq)) if askq >= 1 else "1", fmt(askq, 3)],
            "b": [fmt(bid, pd), str(int(bidq)) if bidq >= 1 else "1", fmt(bidq, 3)],
            "c": [fmt(m.last_price, pd), fmt(m.last_qty, lot)],
            "v": [fmt(v_t, lot), fmt(v_d, lot)],
            "p": [fmt(p_t, pd), fmt(p_d, pd)],
            "t": [t_t, t_d],
            "l": [fmt(l_t, pd), fmt(l_d, pd)],
            "h": [fmt(h_t, pd), fmt(h_d, pd)],
            "o": fmt(o_t, pd),
        }
    return out


def _one_pair(p: Params) -> Pair:
    pairs = _pairs_param(p, required=True)
    if len(pairs) != 1:
        raise invalid("pair")
    return pairs[0]


def depth(engine: Engine, p: Params) -> Any:
    check_known(p, frozenset({"pair", "count", "asset_class"}))
    pair = _one_pair(p)
    count = opt_int(p, "count")
    if count is None:
        count = 100
    if not 0 <= count <= 500:
        raise invalid("count")
    count = count or 500
    ts = int(engine.markets[pair.id].updated)
    pd, lot = pair.pair_decimals, pair.lot_decimals
    return {
        pair.id: {
            "asks": [
                [fmt(px, pd), fmt(qt, lot), ts]
                for px, qt in engine.book_levels(pair.id, "ask", count)
            ],
            "bids": [
                [fmt(px, pd), fmt(qt, lot), ts]
                for px, qt in engine.book_levels(pair.id, "bid", count)
            ],
        }
    }


def ohlc(engine: Engine, p: Params) -> Any:
    check_known(p, frozenset({"pair", "interval", "since", "asset_class"}))
    pair = _one_pair(p)
    interval = opt_int(p, "interval") or 1
    if interval not in OHLC_INTERVALS:
        raise invalid("interval")
    since = opt_dec(p, "since")
    m = engine.markets[pair.id]
    candles = list(m.candles[interval])[-720:]
    pd, lot = pair.pair_decimals, pair.lot_decimals
    rows = [
        [
            c.begin,
            fmt(c.open, pd),
            fmt(c.high, pd),
            fmt(c.low, pd),
            fmt(c.close, pd),
            fmt(c.vwap(), pd),
            fmt(c.volume, lot),
            c.count,
        ]
        for c in candles
        if since is None or c.begin > since
    ]
    last = candles[-2].begin if len(candles) >= 2 else (candles[-1].begin if candles else 0)
    return {pair.id: rows, "last": last}


def trades(engine: Engine, p: Params) -> Any:
    check_known(p, frozenset({"pair", "since", "count", "asset_class"}))
    pair = _one_pair(p)
    since = opt_dec(p, "since")
    count = opt_int(p, "count") or 1000
    if not 1 <= count <= 1000:
        raise invalid("count")
    m = engine.markets[pair.id]
    sel = list(m.trades)
    if since is not None:
        # ``since`` is either seconds or the nanosecond ``last`` cursor.
        cutoff = since / Decimal(10**9) if since > Decimal(10**12) else since
        sel = [t for t in sel if Decimal(repr(t.time)) > cutoff]
    sel = sel[:count]
    pd, lot = pair.pair_decimals, pair.lot_decimals
    rows = [
        [
            fmt(t.price, pd),
            fmt(t.qty, lot),
            RawNum(f"{t.time:.4f}"),
            t.side,
            t.ordtype,
            "",
            t.trade_id,
        ]
        for t in sel
    ]
    last_t = sel[-1].time if sel else (since and float(since)) or engine.now()
    return {pair.id: rows, "last": str(int(last_t * 1e9))}


def spread(engine: Engine, p: Params) -> Any:
    check_known(p, frozenset({"pair", "since", "asset_class"}))
    pair = _one_pair(p)
    since = opt_dec(p, "since")
    m = engine.markets[pair.id]
    pd = pair.pair_decimals
    rows = [[t, fmt(b, pd), fmt(a, pd)] for t, b, a in m.spreads if since is None or t > since]
    return {pair.id: rows, "last": m.spreads[-1][0] if m.spreads else int(engine.now())}


PUBLIC: dict[str, Handler] = {
    "Time": time_,
    "SystemStatus": system_status,
    "Assets": assets,
    "AssetPairs": asset_pairs,
    "Ticker": ticker,
    "Depth": depth,
    "OHLC": ohlc,
    "Trades": trades,
    "Spread": spread,
}
