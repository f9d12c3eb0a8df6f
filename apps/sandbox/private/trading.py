"""Private REST trading: add (single and batch), amend, edit and cancel orders, and the
dead man's switch."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.sandbox.engine import Order
from apps.sandbox.errors import KrakenError, invalid
from apps.sandbox.pairs import Pair, fmt
from apps.sandbox.params import (
    Params,
    check_known,
    opt_bool,
    opt_dec,
    opt_int,
    opt_str,
    str_list,
    validate_flag,
)
from apps.sandbox.util import rfc3339_s

from .context import COMMON, Ctx, allow

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


def _gate_place(ctx: Ctx, params: Params, pair: Pair) -> None:
    flags = str_list(params, "oflags") or []
    ctx.engine.check_can_place(
        pair, ordertype=opt_str(params, "ordertype"), post_only="post" in flags
    )


def add_order(ctx: Ctx) -> Any:
    params = ctx.params
    engine = ctx.engine
    check_known(params, COMMON | ADD_FIELDS)
    pair = engine.resolve_pair_param(params)
    # The fixed +1 is charged on receipt, even if validation then fails (FACTS §3.2).
    engine.trading_charge(ctx.acct, pair.id, Decimal(1))
    _gate_place(ctx, params, pair)
    engine.check_deadline(params)
    validate = validate_flag(params, ctx.form, strict_trap=ctx.engine.strict_validate_trap)
    order = engine.build_order(ctx.acct, params, pair)
    descr: dict[str, Any] = {"order": engine.descr(order)}
    if order.close:
        descr["close"] = engine.close_descr(order.close, pair)
    if validate:
        return {"descr": descr}
    engine.place(ctx.acct, order)
    return {"descr": descr, "txid": [order.txid]}


def add_order_batch(ctx: Ctx) -> Any:
    params = ctx.params
    engine = ctx.engine
    check_known(
        params, COMMON | frozenset({"orders", "pair", "deadline", "validate", "asset_class"})
    )
    orders = params.get("orders")
    if ctx.form or not isinstance(orders, list) or not 2 <= len(orders) <= 15:
        raise invalid("orders")
    pair = engine.resolve_pair_param(params)
    engine.trading_charge(ctx.acct, pair.id, Decimal(len(orders)) / 2)
    engine.check_deadline(params)
    validate = validate_flag(params, ctx.form, strict_trap=ctx.engine.strict_validate_trap)
    built: list[Order] = []
    for item in orders:
        if not isinstance(item, dict):
            raise invalid("orders")
        check_known(item, ADD_FIELDS - {"pair", "deadline", "validate"})
        sub = dict(item, pair=pair.id)
        _gate_place(ctx, sub, pair)
        # Whole-batch validation: any invalid order rejects the entire batch.
        built.append(engine.build_order(ctx.acct, sub, pair))
    cls = [order.cl_ord_id for order in built if order.cl_ord_id]
    if len(cls) != len(set(cls)):
        raise invalid("cl_ord_id")
    out: list[dict[str, Any]] = []
    for order in built:
        entry: dict[str, Any] = {"descr": {"order": engine.descr(order)}}
        if validate:
            out.append(entry)
            continue
        try:
            engine.place(ctx.acct, order)
            entry["txid"] = order.txid
        except KrakenError as err:  # pre-match failures reject only this order
            entry["error"] = err.error
        out.append(entry)
    return {"orders": out}


def _target(ctx: Ctx, id_field: str = "txid") -> Order:
    params = ctx.params
    txid = opt_str(params, id_field)
    cl = opt_str(params, "cl_ord_id")
    if (txid is None) == (cl is None):
        raise invalid(id_field)
    order = (
        ctx.engine.order_by_cl(ctx.acct, cl) if cl is not None else ctx.acct.orders.get(txid or "")
    )
    if order is None:
        raise KrakenError("EOrder:Unknown order")
    if not order.is_open:
        raise KrakenError("EOrder:Invalid order")
    return order


def amend_order(ctx: Ctx) -> Any:
    params = ctx.params
    check_known(
        params,
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
    if ctx.engine.status == "maintenance":
        raise KrakenError("EService:Unavailable")
    ctx.engine.check_deadline(params)
    order = _target(ctx)
    ctx.engine.check_can_amend(order, post_only=bool(opt_bool(params, "post_only")))
    return {"amend_id": ctx.engine.amend(ctx.acct, order, params)}


def edit_order(ctx: Ctx) -> Any:
    params = ctx.params
    engine = ctx.engine
    check_known(
        params,
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
    pair = engine.resolve_pair_param(params)
    if opt_str(params, "cl_ord_id") is not None:
        raise invalid("cl_ord_id")
    txid = opt_str(params, "txid")
    if not txid:
        raise invalid("txid")
    old = ctx.acct.orders.get(txid)
    if old is None or old.pair != pair.id:
        raise KrakenError("EOrder:Unknown order")
    if not old.is_open:
        raise KrakenError("EOrder:Invalid order")
    if old.close or (
        old.ordertype in ("stop-loss", "take-profit", "trailing-stop") and old.triggered
    ):
        raise KrakenError("EOrder:Invalid order")
    _gate_place(
        ctx,
        {"ordertype": old.ordertype, "oflags": params.get("oflags", ",".join(old.oflags))},
        pair,
    )
    engine.check_deadline(params)
    validate = validate_flag(params, ctx.form, strict_trap=ctx.engine.strict_validate_trap)
    new_p: Params = {
        "type": old.side,
        "ordertype": old.ordertype,
        "volume": params.get("volume") or fmt(old.volume, pair.lot_decimals),
        "price": params.get("price")
        or (fmt(old.price, pair.pair_decimals) if old.price is not None else None),
        "price2": params.get("price2")
        or (fmt(old.price2, pair.pair_decimals) if old.price2 is not None else None),
        "oflags": params.get("oflags", ",".join(old.oflags)) or None,
        "userref": params.get("userref", old.userref),
    }
    if old.ordertype == "iceberg":
        new_p["displayvol"] = params.get("displayvol") or fmt(
            old.display_vol or old.volume, pair.lot_decimals
        )
    new_p = {k: v for k, v in new_p.items() if v is not None}
    vol = opt_dec(new_p, "volume")
    if vol is not None and vol <= old.vol_exec:
        raise KrakenError("EOrder:Invalid order")
    new = engine.build_order(ctx.acct, new_p, pair)
    # Executed volume carries over: the replacement order is for the total volume.
    descr = {"order": engine.descr(new)}
    if validate:
        return {"descr": descr, "status": "ok"}
    engine.edit_penalty(ctx.acct, old)
    engine.cancel_order(ctx.acct, old, "Order replaced")
    new.volume = new.volume - old.vol_exec
    engine.place(ctx.acct, new)
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


def cancel_order(ctx: Ctx) -> Any:
    params = ctx.params
    engine = ctx.engine
    check_known(params, allow("txid", "cl_ord_id"))
    engine.check_can_cancel()
    txid = opt_str(params, "txid")
    cl = opt_str(params, "cl_ord_id")
    if (txid is None) == (cl is None):
        raise invalid("txid")
    if cl is not None:
        order = engine.order_by_cl(ctx.acct, cl)
        targets = [order] if order else []
    else:
        txid = txid or ""
        targets = engine.find_orders(ctx.acct, txid)
        if not targets and txid in ctx.acct.orders:
            raise KrakenError("EOrder:Invalid order")
    if not targets:
        raise KrakenError("EOrder:Unknown order")
    for order in targets:
        engine.check_can_cancel(order.pair)
    for order in targets:
        engine.cancel_with_penalty(ctx.acct, order)
    return {"count": len(targets)}


def cancel_all(ctx: Ctx) -> Any:
    check_known(ctx.params, COMMON)
    engine = ctx.engine
    engine.check_can_cancel()
    # Orders on a pair in maintenance cannot be cancelled; the rest are.
    orders = [
        ctx.acct.orders[t]
        for t in list(ctx.acct.open_ids)
        if engine.pair_status.get(ctx.acct.orders[t].pair) != "maintenance"
    ]
    for order in orders:
        engine.cancel_order(ctx.acct, order)
    return {"count": len(orders)}


def cancel_order_batch(ctx: Ctx) -> Any:
    params = ctx.params
    engine = ctx.engine
    check_known(params, allow("orders", "cl_ord_ids"))
    engine.check_can_cancel()
    raw = params.get("orders") or []
    cls = params.get("cl_ord_ids") or []
    if ctx.form or not isinstance(raw, list) or not isinstance(cls, list) or not (raw or cls):
        raise invalid("orders")
    if len(raw) + len(cls) > 50:
        raise invalid("orders")
    targets: list[Order] = []
    for item in raw:
        ident = item.get("txid") if isinstance(item, dict) else item
        if not isinstance(ident, str | int) or isinstance(ident, bool):
            raise invalid("orders")
        targets.extend(engine.find_orders(ctx.acct, str(ident)))
    for cl in cls:
        order = engine.order_by_cl(ctx.acct, str(cl))
        if order is not None:
            targets.append(order)
    seen: set[str] = set()
    count = 0
    for order in targets:
        if order.txid in seen or not order.is_open:
            continue
        seen.add(order.txid)
        engine.check_can_cancel(order.pair)
        engine.cancel_with_penalty(ctx.acct, order)
        count += 1
    return {"count": count}


def cancel_all_after(ctx: Ctx) -> Any:
    check_known(ctx.params, allow("timeout"))
    timeout = opt_int(ctx.params, "timeout")
    if timeout is None or not 0 <= timeout < 86400:
        raise invalid("timeout")
    now = ctx.engine.now()
    ctx.acct.cancel_after = now + timeout if timeout else 0.0
    return {
        "currentTime": rfc3339_s(now),
        "triggerTime": rfc3339_s(ctx.acct.cancel_after) if timeout else "0",
    }
