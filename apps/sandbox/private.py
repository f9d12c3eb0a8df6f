"""Private REST endpoints: account data and trading."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .auth import ApiKey
from .engine import Account, Engine, Order
from .errors import KrakenError, invalid
from .pairs import ASSETS, PAIRS, fee_for, fmt, next_fee, resolve_asset
from .params import (
    Params,
    check_known,
    opt_bool,
    opt_dec,
    opt_int,
    opt_str,
    str_list,
    validate_flag,
)
from .util import rfc3339_s, ts_num

D = Decimal
ZERO = D(0)
PAGE = 50


@dataclass(slots=True)
class Ctx:
    engine: Engine
    acct: Account
    key: ApiKey
    params: Params
    form: bool


Handler = Callable[[Ctx], Any]

COMMON = frozenset({"nonce", "otp"})


def allow(*names: str) -> frozenset[str]:
    return COMMON | frozenset(names)


# ---------------------------------------------------------------------- account data
def _asset_places(asset: str) -> int:
    a = ASSETS.get(asset.split(".")[0])
    return a.decimals if a else 10


def balance(c: Ctx) -> Any:
    check_known(c.params, allow("rebase_multiplier"))
    out: dict[str, str] = {}
    for asset, amt in sorted(c.acct.balances.items()):
        out[asset] = fmt(amt, _asset_places(asset))
    # Earn allocations show as read-only ".F" balances named by altname, like Kraken's
    # other suffixed balances ("XBT.F", "ETH.F", "DOT.F"; cf. "ETH2.S", "USD.M").
    for asset, amt in sorted(earn_by_asset(c.engine, c.acct).items()):
        if amt:
            out[f"{ASSETS[asset].altname}.F"] = fmt(amt, ASSETS[asset].decimals)
    return out


def earn_by_asset(e: Engine, acct: Account) -> dict[str, Decimal]:
    from .earn import STRATEGIES

    out: dict[str, Decimal] = {}
    for sid, amt in acct.earn.items():
        s = STRATEGIES.get(sid)
        if s is not None:
            total = amt + acct.earn_rewards.get(sid, ZERO)
            out[s.asset] = out.get(s.asset, ZERO) + total
    return out


def balance_ex(c: Ctx) -> Any:
    check_known(c.params, allow("rebase_multiplier"))
    out: dict[str, dict[str, str]] = {}
    for asset, amt in sorted(c.acct.balances.items()):
        places = _asset_places(asset)
        out[asset] = {
            "balance": fmt(amt, places),
            "hold_trade": fmt(c.acct.holds.get(asset, ZERO), places),
        }
    return out


def trade_balance(c: Ctx) -> Any:
    check_known(c.params, allow("asset", "rebase_multiplier"))
    name = opt_str(c.params, "asset") or "ZUSD"
    a = resolve_asset(name)
    if a is None:
        raise KrakenError("EQuery:Unknown asset")
    e = c.engine
    total_usd = sum(
        (e.balance_usd(c.acct, asset, amt) for asset, amt in c.acct.balances.items()), ZERO
    )
    rate = e.balance_usd(c.acct, a.id, D(1)) or D(1)
    eb = total_usd / rate
    places = a.decimals
    z = fmt(ZERO, places)
    return {
        "eb": fmt(eb, places),
        "tb": fmt(eb, places),
        "m": z,
        "n": z,
        "c": z,
        "v": z,
        "e": fmt(eb, places),
        "mf": fmt(eb, places),
        "uv": z,
    }


def _filter_orders(c: Ctx, orders: list[Order]) -> list[Order]:
    userref = opt_int(c.params, "userref")
    cl = opt_str(c.params, "cl_ord_id")
    if userref is not None:
        orders = [o for o in orders if o.userref == userref]
    if cl is not None:
        orders = [o for o in orders if o.cl_ord_id == cl]
    return orders


def open_orders(c: Ctx) -> Any:
    check_known(c.params, allow("trades", "userref", "cl_ord_id", "rebase_multiplier"))
    with_trades = opt_bool(c.params, "trades")
    orders = _filter_orders(c, [c.acct.orders[t] for t in c.acct.open_ids])
    return {"open": {o.txid: c.engine.order_json(o, with_trades=with_trades) for o in orders}}


def _time_bound(c: Ctx, name: str) -> float | None:
    raw = opt_str(c.params, name)
    if raw is None or raw == "":
        return None
    for o in c.acct.orders.values():
        if o.txid == raw:
            return o.opentm
    if raw in c.acct.trades:
        return float(c.acct.trades[raw]["time"])
    if raw in c.acct.ledgers:
        return float(c.acct.ledgers[raw]["time"])
    v = opt_dec(c.params, name)
    return float(v) if v is not None else None


def _paginate(c: Ctx, items: list[Any]) -> list[Any]:
    ofs = opt_int(c.params, "ofs") or 0
    if ofs < 0:
        raise invalid("ofs")
    return items[ofs : ofs + PAGE]


def closed_orders(c: Ctx) -> Any:
    check_known(
        c.params,
        allow(
            "trades",
            "userref",
            "cl_ord_id",
            "start",
            "end",
            "ofs",
            "closetime",
            "consolidate_taker",
            "without_count",
            "rebase_multiplier",
        ),
    )
    with_trades = opt_bool(c.params, "trades")
    closetime = opt_str(c.params, "closetime") or "both"
    if closetime not in ("open", "close", "both"):
        raise invalid("closetime")
    start, end = _time_bound(c, "start"), _time_bound(c, "end")
    orders = [o for o in c.acct.orders.values() if not o.is_open]
    orders = _filter_orders(c, orders)

    def in_range(o: Order) -> bool:
        times = {"open": [o.opentm], "close": [o.closetm], "both": [o.opentm, o.closetm]}[closetime]
        return any((start is None or t > start) and (end is None or t <= end) for t in times)

    orders = sorted((o for o in orders if in_range(o)), key=lambda o: -o.closetm)
    out: dict[str, Any] = {
        "closed": {
            o.txid: c.engine.order_json(o, with_trades=with_trades) for o in _paginate(c, orders)
        }
    }
    if not opt_bool(c.params, "without_count"):
        out["count"] = len(orders)
    return out


def query_orders(c: Ctx) -> Any:
    check_known(
        c.params, allow("txid", "trades", "userref", "consolidate_taker", "rebase_multiplier")
    )
    ids = str_list(c.params, "txid", limit=50)
    if not ids:
        raise invalid("txid")
    with_trades = opt_bool(c.params, "trades")
    userref = opt_int(c.params, "userref")
    out: dict[str, Any] = {}
    for t in ids:
        o = c.acct.orders.get(t)
        if o is None:
            raise KrakenError("EOrder:Invalid order")
        if userref is not None and o.userref != userref:
            continue
        out[t] = c.engine.order_json(o, with_trades=with_trades)
    return out


def order_amends(c: Ctx) -> Any:
    check_known(c.params, allow("order_id", "txid", "rebase_multiplier"))
    oid = opt_str(c.params, "order_id") or opt_str(c.params, "txid")
    if not oid:
        raise invalid("order_id")
    o = c.acct.orders.get(oid)
    if o is None:
        raise KrakenError("EOrder:Unknown order")
    amends = o.amends or [c.engine._amend_entry(o, "original", oid, o.opentm)]
    return {"amends": amends, "count": len(amends)}


def trade_json(
    t: dict[str, Any], tid: str, with_ledgers: list[str] | None = None
) -> dict[str, Any]:
    pair = PAIRS[t["pair"]]
    fee_places = _asset_places(t["fee_asset"])
    d: dict[str, Any] = {
        "ordertxid": t["ordertxid"],
        "postxid": t["postxid"],
        "pair": pair.id,
        "time": ts_num(t["time"]),
        "type": t["type"],
        "ordertype": t["ordertype"],
        "price": fmt(t["price"], pair.pair_decimals),
        "cost": fmt(t["cost"], pair.cost_decimals),
        "fee": fmt(t["fee"], fee_places),
        "vol": fmt(t["vol"], pair.lot_decimals),
        "margin": fmt(ZERO, pair.cost_decimals),
        "misc": "",
        "trade_id": t["trade_id"],
        "maker": t["maker"],
    }
    if with_ledgers is not None:
        d["ledgers"] = with_ledgers
    return d


def _ledgers_for(acct: Account, refid: str) -> list[str]:
    return [lid for lid, e in acct.ledgers.items() if e["refid"] == refid]


def trades_history(c: Ctx) -> Any:
    check_known(
        c.params,
        allow(
            "type",
            "trades",
            "start",
            "end",
            "ofs",
            "consolidate_taker",
            "ledgers",
            "without_count",
            "rebase_multiplier",
        ),
    )
    ttype = opt_str(c.params, "type") or "all"
    if ttype not in ("all", "any position", "closed position", "closing position", "no position"):
        raise invalid("type")
    with_ledgers = opt_bool(c.params, "ledgers")
    start, end = _time_bound(c, "start"), _time_bound(c, "end")
    items = [
        (tid, t)
        for tid, t in c.acct.trades.items()
        if (start is None or t["time"] > start) and (end is None or t["time"] <= end)
    ]
    if ttype not in ("all", "no position"):
        items = []
    items.sort(key=lambda x: -x[1]["time"])
    out: dict[str, Any] = {
        "trades": {
            tid: trade_json(t, tid, _ledgers_for(c.acct, tid) if with_ledgers else None)
            for tid, t in _paginate(c, items)
        }
    }
    if not opt_bool(c.params, "without_count"):
        out["count"] = len(items)
    return out


def query_trades(c: Ctx) -> Any:
    check_known(c.params, allow("txid", "trades", "rebase_multiplier"))
    ids = str_list(c.params, "txid", limit=20)
    if not ids:
        raise invalid("txid")
    out: dict[str, Any] = {}
    for tid in ids:
        t = c.acct.trades.get(tid)
        if t is None:
            raise KrakenError("EGeneral:Invalid arguments:txid")
        out[tid] = trade_json(t, tid)
    return out


LEDGER_TYPES = frozenset(
    {
        "all",
        "trade",
        "deposit",
        "withdrawal",
        "transfer",
        "margin",
        "adjustment",
        "rollover",
        "credit",
        "settled",
        "staking",
        "dividend",
        "sale",
        "nft_rebate",
        "earn",
    }
)


def ledgers(c: Ctx) -> Any:
    check_known(
        c.params,
        allow(
            "asset", "aclass", "type", "start", "end", "ofs", "without_count", "rebase_multiplier"
        ),
    )
    ltype = opt_str(c.params, "type") or "all"
    if ltype not in LEDGER_TYPES:
        raise invalid("type")
    names = str_list(c.params, "asset")
    assets: set[str] | None = None
    if names and names != ["all"]:
        assets = set()
        for n in names:
            a = resolve_asset(n)
            if a is None:
                raise KrakenError("EQuery:Unknown asset")
            assets.add(a.id)
    start, end = _time_bound(c, "start"), _time_bound(c, "end")
    items = [
        (lid, le)
        for lid, le in c.acct.ledgers.items()
        if (assets is None or le["asset"] in assets)
        and (ltype == "all" or le["type"] == ltype)
        and (start is None or le["time"] > start)
        and (end is None or le["time"] <= end)
    ]
    items.sort(key=lambda x: -x[1]["time"])
    out: dict[str, Any] = {
        "ledger": {lid: c.engine.ledger_json(lid, le) for lid, le in _paginate(c, items)}
    }
    if not opt_bool(c.params, "without_count"):
        out["count"] = len(items)
    return out


def query_ledgers(c: Ctx) -> Any:
    check_known(c.params, allow("id", "trades", "rebase_multiplier"))
    ids = str_list(c.params, "id", limit=20)
    if not ids:
        raise invalid("id")
    out: dict[str, Any] = {}
    for lid in ids:
        le = c.acct.ledgers.get(lid)
        if le is None:
            raise KrakenError("EGeneral:Invalid arguments:id")
        out[lid] = c.engine.ledger_json(lid, le)
    return out


def trade_volume(c: Ctx) -> Any:
    check_known(c.params, allow("pair", "rebase_multiplier"))
    vol = c.acct.volume_usd
    out: dict[str, Any] = {"currency": "ZUSD", "volume": fmt(vol, 4)}
    names = str_list(c.params, "pair")
    if names:
        fees: dict[str, Any] = {}
        fees_maker: dict[str, Any] = {}
        for n in names:
            pair = c.engine.resolve_pair_param({"pair": n})
            for sched, target in ((pair.taker_fees, fees), (pair.maker_fees, fees_maker)):
                nf, nv, tv = next_fee(sched, vol)
                target[pair.id] = {
                    "fee": fmt(fee_for(sched, vol), 4),
                    "minfee": fmt(sched[-1][1], 4),
                    "maxfee": fmt(sched[0][1], 4),
                    "nextfee": fmt(nf, 4) if nf is not None else None,
                    "nextvolume": fmt(nv, 4) if nv is not None else None,
                    "tiervolume": fmt(tv, 4),
                }
        out["fees"] = fees
        out["fees_maker"] = fees_maker
    return out


def ws_token(c: Ctx) -> Any:
    check_known(c.params, COMMON)
    token = c.engine.ids.token()
    c.acct.ws_tokens[token] = c.engine.now() + 900
    return {"token": token, "expires": 900}


# ---------------------------------------------------------------------- trading
ADD_FIELDS = frozenset(
    {
        "userref",
        "cl_ord_id",
        "ordertype",
        "type",
        "volume",
        "displayvol",
        "pair",
        "price",
        "price2",
        "trigger",
        "leverage",
        "reduce_only",
        "stptype",
        "oflags",
        "timeinforce",
        "starttm",
        "expiretm",
        "close",
        "deadline",
        "validate",
        "asset_class",
        "margin",
    }
)


def _gate_place(c: Ctx, p: Params) -> None:
    flags = str_list(p, "oflags") or []
    c.engine.check_can_place("post" in flags and opt_str(p, "ordertype") in ("limit", "iceberg"))


def add_order(c: Ctx) -> Any:
    p = c.params
    e = c.engine
    check_known(p, COMMON | ADD_FIELDS)
    pair = e.resolve_pair_param(p)
    # The fixed +1 is charged on receipt, even if validation then fails (FACTS §3.2).
    e.trading_charge(c.acct, pair.id, D(1))
    _gate_place(c, p)
    e.check_deadline(p)
    validate = validate_flag(p, c.form, strict_trap=c.engine.strict_validate_trap)
    o = e.build_order(c.acct, p, pair)
    descr: dict[str, Any] = {"order": e.descr(o)}
    if o.close:
        descr["close"] = e.close_descr(o.close, pair)
    if validate:
        return {"descr": descr}
    e.place(c.acct, o)
    return {"descr": descr, "txid": [o.txid]}


def add_order_batch(c: Ctx) -> Any:
    p = c.params
    e = c.engine
    check_known(p, COMMON | frozenset({"orders", "pair", "deadline", "validate", "asset_class"}))
    orders = p.get("orders")
    if c.form or not isinstance(orders, list) or not 2 <= len(orders) <= 15:
        raise invalid("orders")
    pair = e.resolve_pair_param(p)
    e.trading_charge(c.acct, pair.id, D(len(orders)) / 2)
    e.check_deadline(p)
    validate = validate_flag(p, c.form, strict_trap=c.engine.strict_validate_trap)
    built: list[Order] = []
    for item in orders:
        if not isinstance(item, dict):
            raise invalid("orders")
        check_known(item, ADD_FIELDS - {"pair", "deadline", "validate"})
        sub = dict(item, pair=pair.id)
        _gate_place(c, sub)
        # Whole-batch validation: any invalid order rejects the entire batch.
        built.append(e.build_order(c.acct, sub, pair))
    cls = [o.cl_ord_id for o in built if o.cl_ord_id]
    if len(cls) != len(set(cls)):
        raise invalid("cl_ord_id")
    out: list[dict[str, Any]] = []
    for o in built:
        entry: dict[str, Any] = {"descr": {"order": e.descr(o)}}
        if validate:
            out.append(entry)
            continue
        try:
            e.place(c.acct, o)
            entry["txid"] = o.txid
        except KrakenError as err:  # pre-match failures reject only this order
            entry["error"] = err.error
        out.append(entry)
    return {"orders": out}


def _target(c: Ctx, id_field: str = "txid") -> Order:
    p = c.params
    txid = opt_str(p, id_field)
    cl = opt_str(p, "cl_ord_id")
    if (txid is None) == (cl is None):
        raise invalid(id_field)
    o = c.engine.order_by_cl(c.acct, cl) if cl is not None else c.acct.orders.get(txid or "")
    if o is None:
        raise KrakenError("EOrder:Unknown order")
    if not o.is_open:
        raise KrakenError("EOrder:Invalid order")
    return o


def amend_order(c: Ctx) -> Any:
    p = c.params
    check_known(
        p,
        allow(
            "txid",
            "cl_ord_id",
            "order_qty",
            "display_qty",
            "limit_price",
            "trigger_price",
            "post_only",
            "deadline",
            "pair",
            "asset_class",
        ),
    )
    c.engine.check_can_cancel()
    if c.engine.status == "cancel_only":
        raise KrakenError("EService:Market in cancel_only mode")
    c.engine.check_deadline(p)
    o = _target(c)
    return {"amend_id": c.engine.amend(c.acct, o, p)}


def edit_order(c: Ctx) -> Any:
    p = c.params
    e = c.engine
    check_known(
        p,
        allow(
            "txid",
            "pair",
            "volume",
            "displayvol",
            "price",
            "price2",
            "oflags",
            "userref",
            "deadline",
            "cancel_response",
            "validate",
            "asset_class",
        ),
    )
    pair = e.resolve_pair_param(p)
    if opt_str(p, "cl_ord_id") is not None:
        raise invalid("cl_ord_id")
    txid = opt_str(p, "txid")
    if not txid:
        raise invalid("txid")
    old = c.acct.orders.get(txid)
    if old is None or old.pair != pair.id:
        raise KrakenError("EOrder:Unknown order")
    if not old.is_open:
        raise KrakenError("EOrder:Invalid order")
    if old.close or (
        old.ordertype in ("stop-loss", "take-profit", "trailing-stop") and old.triggered
    ):
        raise KrakenError("EOrder:Invalid order")
    _gate_place(c, {"ordertype": old.ordertype, "oflags": p.get("oflags", ",".join(old.oflags))})
    e.check_deadline(p)
    validate = validate_flag(p, c.form, strict_trap=c.engine.strict_validate_trap)
    new_p: Params = {
        "type": old.side,
        "ordertype": old.ordertype,
        "volume": p.get("volume") or fmt(old.volume, pair.lot_decimals),
        "price": p.get("price")
        or (fmt(old.price, pair.pair_decimals) if old.price is not None else None),
        "price2": p.get("price2")
        or (fmt(old.price2, pair.pair_decimals) if old.price2 is not None else None),
        "oflags": p.get("oflags", ",".join(old.oflags)) or None,
        "userref": p.get("userref", old.userref),
    }
    if old.ordertype == "iceberg":
        new_p["displayvol"] = p.get("displayvol") or fmt(
            old.display_vol or old.volume, pair.lot_decimals
        )
    new_p = {k: v for k, v in new_p.items() if v is not None}
    vol = opt_dec(new_p, "volume")
    if vol is not None and vol <= old.vol_exec:
        raise KrakenError("EOrder:Invalid order")
    new = e.build_order(c.acct, new_p, pair)
    # Executed volume carries over: the replacement order is for the total volume.
    descr = {"order": e.descr(new)}
    if validate:
        return {"descr": descr, "status": "ok"}
    e.edit_penalty(c.acct, old)
    e.cancel_order(c.acct, old, "Order replaced")
    new.volume = new.volume - old.vol_exec
    e.place(c.acct, new)
    return {
        "descr": descr,
        "txid": new.txid,
        "originaltxid": old.txid,
        "status": "ok",
        "volume": fmt(new.volume, pair.lot_decimals),
        "price": fmt(new.price, pair.pair_decimals) if new.price else "0",
        "price2": fmt(new.price2, pair.pair_decimals) if new.price2 else "0",
        "orders_cancelled": 1,
        **({"newuserref": str(new.userref)} if new.userref is not None else {}),
        **({"olduserref": str(old.userref)} if old.userref is not None else {}),
    }


def cancel_order(c: Ctx) -> Any:
    p = c.params
    e = c.engine
    check_known(p, allow("txid", "cl_ord_id"))
    e.check_can_cancel()
    txid = opt_str(p, "txid")
    cl = opt_str(p, "cl_ord_id")
    if (txid is None) == (cl is None):
        raise invalid("txid")
    if cl is not None:
        o = e.order_by_cl(c.acct, cl)
        targets = [o] if o else []
    else:
        txid = txid or ""
        targets = e.find_orders(c.acct, txid)
        if not targets and txid in c.acct.orders:
            raise KrakenError("EOrder:Invalid order")
    if not targets:
        raise KrakenError("EOrder:Unknown order")
    for o in targets:
        e.cancel_with_penalty(c.acct, o)
    return {"count": len(targets)}


def cancel_all(c: Ctx) -> Any:
    check_known(c.params, COMMON)
    e = c.engine
    e.check_can_cancel()
    orders = [c.acct.orders[t] for t in list(c.acct.open_ids)]
    for o in orders:
        e.cancel_order(c.acct, o)
    return {"count": len(orders)}


def cancel_order_batch(c: Ctx) -> Any:
    p = c.params
    e = c.engine
    check_known(p, allow("orders", "cl_ord_ids"))
    e.check_can_cancel()
    raw = p.get("orders") or []
    cls = p.get("cl_ord_ids") or []
    if c.form or not isinstance(raw, list) or not isinstance(cls, list) or not (raw or cls):
        raise invalid("orders")
    if len(raw) + len(cls) > 50:
        raise invalid("orders")
    targets: list[Order] = []
    for item in raw:
        ident = item.get("txid") if isinstance(item, dict) else item
        if not isinstance(ident, str | int) or isinstance(ident, bool):
            raise invalid("orders")
        targets.extend(e.find_orders(c.acct, str(ident)))
    for cl in cls:
        o = e.order_by_cl(c.acct, str(cl))
        if o is not None:
            targets.append(o)
    seen: set[str] = set()
    count = 0
    for o in targets:
        if o.txid in seen or not o.is_open:
            continue
        seen.add(o.txid)
        e.cancel_with_penalty(c.acct, o)
        count += 1
    return {"count": count}


def cancel_all_after(c: Ctx) -> Any:
    check_known(c.params, allow("timeout"))
    timeout = opt_int(c.params, "timeout")
    if timeout is None or not 0 <= timeout < 86400:
        raise invalid("timeout")
    now = c.engine.now()
    c.acct.cancel_after = now + timeout if timeout else 0.0
    return {
        "currentTime": rfc3339_s(now),
        "triggerTime": rfc3339_s(c.acct.cancel_after) if timeout else "0",
    }


PRIVATE: dict[str, Handler] = {
    "Balance": balance,
    "BalanceEx": balance_ex,
    "TradeBalance": trade_balance,
    "OpenOrders": open_orders,
    "ClosedOrders": closed_orders,
    "QueryOrders": query_orders,
    "OrderAmends": order_amends,
    "TradesHistory": trades_history,
    "QueryTrades": query_trades,
    "Ledgers": ledgers,
    "QueryLedgers": query_ledgers,
    "TradeVolume": trade_volume,
    "GetWebSocketsToken": ws_token,
    "AddOrder": add_order,
    "AddOrderBatch": add_order_batch,
    "AmendOrder": amend_order,
    "EditOrder": edit_order,
    "CancelOrder": cancel_order,
    "CancelAll": cancel_all,
    "CancelOrderBatch": cancel_order_batch,
    "CancelAllOrdersAfter": cancel_all_after,
}
