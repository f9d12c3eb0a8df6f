"""Private REST account data: balances, orders, trades, ledgers, fee volume, WS token."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.sandbox.engine import Account, Engine, Order
from apps.sandbox.errors import KrakenError, invalid
from apps.sandbox.pairs import ASSETS, PAIRS, fmt, resolve_asset
from apps.sandbox.params import (
    check_known,
    opt_bool,
    opt_dec,
    opt_int,
    opt_str,
    str_list,
)
from apps.sandbox.util import rfc3339, ts_num

from .context import COMMON, PAGE, ZERO, Ctx, allow


# ---------------------------------------------------------------------- account data
def _asset_places(asset: str) -> int:
    asset_info = ASSETS.get(asset.split(".")[0])
    return asset_info.decimals if asset_info else 10


def balance(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("rebase_multiplier"))
    out: dict[str, str] = {}
    for asset, amt in sorted(ctx.acct.balances.items()):
        out[asset] = fmt(amt, _asset_places(asset))
    out.update(_legacy_earn_balances(ctx))
    return out


def _legacy_earn_balances(ctx: Ctx) -> list[tuple[str, str]]:
    """Before 13 Nov 2025 Balance/BalanceEx also listed Earn funds as read-only ".F"
    assets named by altname ("XBT.F", "DOT.F"); Kraken has deprecated them (change log), so
    they appear only when the sandbox is told to speak the old shape."""
    if not ctx.engine.legacy_f_balances:
        return []
    return [
        (f"{ASSETS[asset].altname}.F", fmt(amt, ASSETS[asset].decimals))
        for asset, amt in sorted(earn_by_asset(ctx.engine, ctx.acct).items())
        if amt
    ]


def earn_by_asset(engine: Engine, acct: Account) -> dict[str, Decimal]:
    # Imported here: the Earn handlers build on this package's Ctx.
    from apps.sandbox.earn import earn_by_asset as earn_totals

    return earn_totals(acct)


def balance_ex(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("rebase_multiplier"))
    out: dict[str, dict[str, str]] = {}
    for asset, amt in sorted(ctx.acct.balances.items()):
        places = _asset_places(asset)
        out[asset] = {
            "balance": fmt(amt, places),
            "hold_trade": fmt(ctx.acct.holds.get(asset, ZERO), places),
        }
    for name, text in _legacy_earn_balances(ctx):
        out[name] = {"balance": text, "hold_trade": fmt(ZERO, _asset_places(name))}
    return out


def trade_balance(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("asset", "rebase_multiplier"))
    name = opt_str(ctx.params, "asset") or "ZUSD"
    asset_info = resolve_asset(name)
    if asset_info is None:
        raise KrakenError("EQuery:Unknown asset")
    engine = ctx.engine
    total_usd = sum(
        (engine.balance_usd(ctx.acct, asset, amt) for asset, amt in ctx.acct.balances.items()), ZERO
    )
    rate = engine.balance_usd(ctx.acct, asset_info.id, Decimal(1)) or Decimal(1)
    equivalent_balance = total_usd / rate
    places = asset_info.decimals
    zero_text = fmt(ZERO, places)
    return {
        "eb": fmt(equivalent_balance, places),
        "tb": fmt(equivalent_balance, places),
        "m": zero_text,
        "n": zero_text,
        "c": zero_text,
        "v": zero_text,
        "e": fmt(equivalent_balance, places),
        "mf": fmt(equivalent_balance, places),
        "uv": zero_text,
    }


def _filter_orders(ctx: Ctx, orders: list[Order]) -> list[Order]:
    userref = opt_int(ctx.params, "userref")
    cl = opt_str(ctx.params, "cl_ord_id")
    if userref is not None:
        orders = [order for order in orders if order.userref == userref]
    if cl is not None:
        orders = [order for order in orders if order.cl_ord_id == cl]
    return orders


def open_orders(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("trades", "userref", "cl_ord_id", "rebase_multiplier"))
    with_trades = opt_bool(ctx.params, "trades")
    orders = _filter_orders(ctx, [ctx.acct.orders[t] for t in ctx.acct.open_ids])
    return {
        "open": {
            order.txid: ctx.engine.order_json(order, with_trades=with_trades) for order in orders
        }
    }


def _time_bound(ctx: Ctx, name: str) -> float | None:
    raw = opt_str(ctx.params, name)
    if raw is None or raw == "":
        return None
    for order in ctx.acct.orders.values():
        if order.txid == raw:
            return order.opentm
    if raw in ctx.acct.trades:
        return float(ctx.acct.trades[raw]["time"])
    if raw in ctx.acct.ledgers:
        return float(ctx.acct.ledgers[raw]["time"])
    v = opt_dec(ctx.params, name)
    return float(v) if v is not None else None


def _paginate(ctx: Ctx, items: list[Any]) -> list[Any]:
    ofs = opt_int(ctx.params, "ofs") or 0
    if ofs < 0:
        raise invalid("ofs")
    return items[ofs : ofs + PAGE]


def closed_orders(ctx: Ctx) -> Any:
    check_known(
        ctx.params,
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
    with_trades = opt_bool(ctx.params, "trades")
    closetime = opt_str(ctx.params, "closetime") or "both"
    if closetime not in ("open", "close", "both"):
        raise invalid("closetime")
    start, end = _time_bound(ctx, "start"), _time_bound(ctx, "end")
    orders = [order for order in ctx.acct.orders.values() if not order.is_open]
    orders = _filter_orders(ctx, orders)

    def in_range(order: Order) -> bool:
        times = {
            "open": [order.opentm],
            "close": [order.closetm],
            "both": [order.opentm, order.closetm],
        }[closetime]
        return any((start is None or t > start) and (end is None or t <= end) for t in times)

    orders = sorted(
        (order for order in orders if in_range(order)), key=lambda order: -order.closetm
    )
    out: dict[str, Any] = {
        "closed": {
            order.txid: ctx.engine.order_json(order, with_trades=with_trades)
            for order in _paginate(ctx, orders)
        }
    }
    if not opt_bool(ctx.params, "without_count"):
        out["count"] = len(orders)
    return out


def query_orders(ctx: Ctx) -> Any:
    check_known(
        ctx.params, allow("txid", "trades", "userref", "consolidate_taker", "rebase_multiplier")
    )
    ids = str_list(ctx.params, "txid", limit=50)
    if not ids:
        raise invalid("txid")
    with_trades = opt_bool(ctx.params, "trades")
    userref = opt_int(ctx.params, "userref")
    out: dict[str, Any] = {}
    for t in ids:
        order = ctx.acct.orders.get(t)
        if order is None:
            raise KrakenError("EOrder:Invalid order")
        if userref is not None and order.userref != userref:
            continue
        _check_may_see(ctx, order)
        out[t] = ctx.engine.order_json(order, with_trades=with_trades)
    return out


def _check_may_see(ctx: Ctx, order: Order) -> None:
    """QueryOrders/OrderAmends need the open- or closed-orders permission "depending on
    status of order" (spec): a key with only one of them sees only those orders."""
    needed = "query_open" if order.is_open else "query_closed"
    if needed not in ctx.key.permissions:
        raise KrakenError("EGeneral:Permission denied")


def order_amends(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("order_id", "txid", "rebase_multiplier"))
    oid = opt_str(ctx.params, "order_id") or opt_str(ctx.params, "txid")
    if not oid:
        raise invalid("order_id")
    order = ctx.acct.orders.get(oid)
    if order is None:
        raise KrakenError("EOrder:Unknown order")
    _check_may_see(ctx, order)
    amends = order.amends or [ctx.engine._amend_entry(order, "original", oid, order.opentm)]
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
    return [lid for lid, engine in acct.ledgers.items() if engine["refid"] == refid]


def trades_history(ctx: Ctx) -> Any:
    check_known(
        ctx.params,
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
    ttype = opt_str(ctx.params, "type") or "all"
    if ttype not in ("all", "any position", "closed position", "closing position", "no position"):
        raise invalid("type")
    with_ledgers = opt_bool(ctx.params, "ledgers")
    start, end = _time_bound(ctx, "start"), _time_bound(ctx, "end")
    items = [
        (tid, t)
        for tid, t in ctx.acct.trades.items()
        if (start is None or t["time"] > start) and (end is None or t["time"] <= end)
    ]
    if ttype not in ("all", "no position"):
        items = []
    items.sort(key=lambda x: -x[1]["time"])
    out: dict[str, Any] = {
        "trades": {
            tid: trade_json(t, tid, _ledgers_for(ctx.acct, tid) if with_ledgers else None)
            for tid, t in _paginate(ctx, items)
        }
    }
    if not opt_bool(ctx.params, "without_count"):
        out["count"] = len(items)
    return out


def query_trades(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("txid", "trades", "rebase_multiplier"))
    ids = str_list(ctx.params, "txid", limit=20)
    if not ids:
        raise invalid("txid")
    out: dict[str, Any] = {}
    for tid in ids:
        t = ctx.acct.trades.get(tid)
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


def ledgers(ctx: Ctx) -> Any:
    check_known(
        ctx.params,
        allow(
            "asset", "aclass", "type", "start", "end", "ofs", "without_count", "rebase_multiplier"
        ),
    )
    ltype = opt_str(ctx.params, "type") or "all"
    if ltype not in LEDGER_TYPES:
        raise invalid("type")
    names = str_list(ctx.params, "asset")
    assets: set[str] | None = None
    if names and names != ["all"]:
        assets = set()
        for n in names:
            asset_info = resolve_asset(n)
            if asset_info is None:
                raise KrakenError("EQuery:Unknown asset")
            assets.add(asset_info.id)
    start, end = _time_bound(ctx, "start"), _time_bound(ctx, "end")
    items = [
        (lid, entry)
        for lid, entry in ctx.acct.ledgers.items()
        if (assets is None or entry["asset"] in assets)
        and (ltype == "all" or entry["type"] == ltype)
        and (start is None or entry["time"] > start)
        and (end is None or entry["time"] <= end)
    ]
    items.sort(key=lambda x: -x[1]["time"])
    out: dict[str, Any] = {
        "ledger": {lid: ctx.engine.ledger_json(lid, entry) for lid, entry in _paginate(ctx, items)}
    }
    if not opt_bool(ctx.params, "without_count"):
        out["count"] = len(items)
    return out


def query_ledgers(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("id", "trades", "rebase_multiplier"))
    ids = str_list(ctx.params, "id", limit=20)
    if not ids:
        raise invalid("id")
    out: dict[str, Any] = {}
    for lid in ids:
        entry = ctx.acct.ledgers.get(lid)
        if entry is None:
            raise KrakenError("EGeneral:Invalid arguments:id")
        out[lid] = ctx.engine.ledger_json(lid, entry)
    return out


def api_key_info(ctx: Ctx) -> Any:
    """GetApiKeyInfo (change log, 11 Mar 2026): the calling key's name, permissions,
    restrictions and usage timestamps. Our reference material has no field-level schema;
    the permission names are the sandbox's (and the portal's) names of Kraken's switches."""
    check_known(ctx.params, COMMON)
    key = ctx.key
    return {
        "name": key.name,
        "permissions": sorted(key.permissions),
        "restrictions": {
            "nonce_window": key.nonce_window,
            "otp_required": key.otp is not None,
            "ip_allowlist": [],
            "query_start": None,
            "query_end": None,
            "expires_at": None,
        },
        "created_at": rfc3339(key.created_at) if key.created_at else None,
        "last_used_at": rfc3339(key.last_used_at) if key.last_used_at else None,
    }


def ws_token(ctx: Ctx) -> Any:
    check_known(ctx.params, COMMON)
    token = ctx.engine.ids.token()
    ctx.acct.ws_tokens[token] = ctx.engine.now() + 900
    ctx.engine.ws_token_keys[token] = ctx.key.key
    return {"token": token, "expires": 900}
