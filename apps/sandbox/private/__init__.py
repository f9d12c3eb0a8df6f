"""Private REST endpoints: account data and trading (funding and Earn have their own
modules and join the dispatch table in ``server``)."""

from __future__ import annotations

from .account_data import (
    api_key_info,
    balance,
    balance_ex,
    closed_orders,
    ledgers,
    open_orders,
    order_amends,
    query_ledgers,
    query_orders,
    query_trades,
    trade_balance,
    trades_history,
    ws_token,
)
from .context import COMMON, Ctx, Handler, allow
from .fees import trade_volume
from .trading import (
    ADD_FIELDS,
    add_order,
    add_order_batch,
    amend_order,
    cancel_all,
    cancel_all_after,
    cancel_order,
    cancel_order_batch,
    edit_order,
)

__all__ = [
    "ADD_FIELDS",
    "COMMON",
    "PRIVATE",
    "Ctx",
    "Handler",
    "add_order",
    "allow",
    "amend_order",
    "cancel_all",
    "cancel_all_after",
]

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
    "GetApiKeyInfo": api_key_info,
    "AddOrder": add_order,
    "AddOrderBatch": add_order_batch,
    "AmendOrder": amend_order,
    "EditOrder": edit_order,
    "CancelOrder": cancel_order,
    "CancelAll": cancel_all,
    "CancelOrderBatch": cancel_order_batch,
    "CancelAllOrdersAfter": cancel_all_after,
}
