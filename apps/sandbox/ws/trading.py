"""Trading over the socket: add/amend/cancel/batch requests mapped onto the REST handlers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.sandbox.auth import METHOD_PERMISSIONS, permitted
from apps.sandbox.errors import KrakenError
from apps.sandbox.pairs import PAIRS_BY_SYMBOL
from apps.sandbox.private import (
    ADD_FIELDS,
    Ctx,
    add_order,
    amend_order,
    cancel_all,
    cancel_all_after,
)
from apps.sandbox.util import parse_rfc3339

from .connection import (
    Conn,
)
from .public_channels import PublicChannels

# The REST method whose key permissions each WS trading request needs.
WS_TO_REST_METHOD: dict[str, str] = {
    "add_order": "AddOrder",
    "batch_add": "AddOrderBatch",
    "amend_order": "AmendOrder",
    "edit_order": "EditOrder",
    "cancel_order": "CancelOrder",
    "cancel_all": "CancelAll",
    "cancel_all_orders_after": "CancelAllOrdersAfter",
    "batch_cancel": "CancelOrderBatch",
}


class TradingRequests(PublicChannels):
    # ------------------------------------------------------------------ trading
    def trade(
        self, conn: Conn, method: str, params: dict[str, Any], req_id: Any, time_in: str
    ) -> None:
        acct = self._auth(conn, params)
        engine = self.engine
        key = engine.auth.keys.get(engine.ws_token_keys.get(str(params.get("token")), ""))
        if key is None or not permitted(
            METHOD_PERMISSIONS[WS_TO_REST_METHOD.get(method, "AddOrder")], key.permissions
        ):
            raise KrakenError("EGeneral:Permission denied")
        result: dict[str, Any]
        if method == "add_order":
            rest = self._ws_to_rest(params)
            out = add_order(Ctx(engine, acct, key, rest, form=False))
            result = {"order_id": out.get("txid", [""])[0]}
            if "cl_ord_id" in params:
                result["cl_ord_id"] = params["cl_ord_id"]
            if "order_userref" in params:
                result["order_userref"] = params["order_userref"]
        elif method == "amend_order":
            rest = {
                "txid": params.get("order_id"),
                "cl_ord_id": params.get("cl_ord_id"),
                "order_qty": params.get("order_qty"),
                "limit_price": params.get("limit_price"),
                "trigger_price": params.get("trigger_price"),
                "display_qty": params.get("display_qty"),
                "post_only": params.get("post_only"),
            }
            rest = {
                field: str(value) if isinstance(value, Decimal) else value
                for field, value in rest.items()
                if value is not None
            }
            out = amend_order(Ctx(engine, acct, key, rest, form=False))
            result = {"amend_id": out["amend_id"]}
            for field in ("order_id", "cl_ord_id"):
                if field in params:
                    result[field] = params[field]
        elif method in ("cancel_order", "batch_cancel"):
            ids = params.get("order_id") or params.get("orders") or []
            cls = params.get("cl_ord_id") or []
            if not isinstance(ids, list) or not isinstance(cls, list) or not (ids or cls):
                raise KrakenError("EGeneral:Invalid arguments:order_id")
            engine.check_can_cancel()
            # WS v2 uses one string for already-gone and never-valid ids (FACTS §5.6).
            for ident in ids:
                order = acct.orders.get(str(ident))
                if order is None or not order.is_open:
                    raise KrakenError("EOrder:Invalid order")
                engine.check_can_cancel(order.pair)
                engine.cancel_with_penalty(acct, order)
            for cl_ord_id in cls:
                order_by_cl = engine.order_by_cl(acct, str(cl_ord_id))
                if order_by_cl is None:
                    raise KrakenError("EOrder:Invalid order")
                engine.cancel_with_penalty(acct, order_by_cl)
            result = (
                {"order_id": ids[0]}
                if len(ids) == 1
                else (
                    {"cl_ord_id": cls[0]}
                    if len(cls) == 1 and not ids
                    else {"count": len(ids) + len(cls)}
                )
            )
        elif method == "cancel_all":
            result = cancel_all(Ctx(engine, acct, key, {}, form=False))
        elif method == "cancel_all_orders_after":
            out = cancel_all_after(
                Ctx(engine, acct, key, {"timeout": params.get("timeout")}, form=False)
            )
            result = out
        elif method == "batch_add":
            orders = params.get("orders")
            sym = PAIRS_BY_SYMBOL.get(str(params.get("symbol")))
            if sym is None:
                raise KrakenError("EQuery:Unknown asset pair")
            if not isinstance(orders, list) or not 2 <= len(orders) <= 15:
                raise KrakenError("EGeneral:Invalid arguments:orders")
            results = []
            for item in orders:
                rest = self._ws_to_rest({**item, "symbol": sym.symbol})
                out = add_order(Ctx(engine, acct, key, rest, form=False))
                results.append({"order_id": out.get("txid", [""])[0]})
            result = results  # type: ignore[assignment]
        else:
            raise KrakenError("EGeneral:Invalid arguments")
        if not conn.mute_acks:
            conn.send(self._ack(method, req_id, time_in, result))

    @staticmethod
    def _ws_to_rest(params: dict[str, Any]) -> dict[str, Any]:
        """Translate WS v2 add_order spellings into AddOrder's REST parameters."""

        def as_text(value: Any) -> str:
            return format(value, "f") if isinstance(value, Decimal) else str(value)

        allowed = {
            "order_type",
            "side",
            "order_qty",
            "symbol",
            "limit_price",
            "limit_price_type",
            "triggers",
            "time_in_force",
            "post_only",
            "reduce_only",
            "fee_preference",
            "no_mpp",
            "order_userref",
            "cl_ord_id",
            "display_qty",
            "effective_time",
            "expire_time",
            "deadline",
            "validate",
            "stp_type",
            "conditional",
            "margin",
            "token",
            "cash_order_qty",
        }
        for field in params:
            if field not in allowed:
                raise KrakenError(f"EGeneral:Invalid arguments:Unsupported field: '{field}'")
        rest: dict[str, Any] = {
            "pair": as_text(params.get("symbol", "")),
            "type": params.get("side"),
            "ordertype": params.get("order_type"),
        }
        if "order_qty" in params:
            rest["volume"] = as_text(params["order_qty"])
        elif "cash_order_qty" in params:
            rest["volume"] = as_text(params["cash_order_qty"])
        flags = []
        if params.get("post_only"):
            flags.append("post")
        if params.get("no_mpp"):
            flags.append("nompp")
        if params.get("fee_preference") == "base":
            flags.append("fcib")
        elif params.get("fee_preference") == "quote":
            flags.append("fciq")
        if "cash_order_qty" in params:
            flags.append("viqc")
        if flags:
            rest["oflags"] = ",".join(flags)
        order_type = str(params.get("order_type"))
        trig = params.get("triggers") if isinstance(params.get("triggers"), dict) else None
        if trig is not None:
            price = as_text(trig.get("price"))
            ptype = trig.get("price_type", "static")
            if order_type.startswith("trailing"):
                price = "+" + price.lstrip("+") + ("%" if ptype == "pct" else "")
            elif ptype == "pct":
                price = price + "%"
            rest["price"] = price
            if trig.get("reference") == "index":
                rest["trigger"] = "index"
            if "limit_price" in params:
                rest["price2"] = as_text(params["limit_price"])
        elif "limit_price" in params:
            rest["price"] = as_text(params["limit_price"])
        if "time_in_force" in params:
            rest["timeinforce"] = str(params["time_in_force"]).upper()
        if "order_userref" in params:
            rest["userref"] = params["order_userref"]
        if "cl_ord_id" in params:
            rest["cl_ord_id"] = params["cl_ord_id"]
        if "display_qty" in params:
            rest["displayvol"] = as_text(params["display_qty"])
        if "stp_type" in params:
            rest["stptype"] = str(params["stp_type"]).replace("_", "-")
        if "deadline" in params:
            rest["deadline"] = params["deadline"]
        if params.get("validate"):
            rest["validate"] = True
        for src, dst in (("effective_time", "starttm"), ("expire_time", "expiretm")):
            if src in params:
                expires = parse_rfc3339(str(params[src]))
                if expires is None:
                    raise KrakenError(f"EGeneral:Invalid arguments:{src}")
                rest[dst] = str(int(expires))
        cond = params.get("conditional")
        if isinstance(cond, dict):
            close: dict[str, str] = {"ordertype": str(cond.get("order_type"))}
            if "trigger_price" in cond:
                close["price"] = as_text(cond["trigger_price"])
            elif "limit_price" in cond:
                close["price"] = as_text(cond["limit_price"])
            if "trigger_price" in cond and "limit_price" in cond:
                close["price2"] = as_text(cond["limit_price"])
            rest["close"] = close
        return {field: value for field, value in rest.items() if field in ADD_FIELDS}
