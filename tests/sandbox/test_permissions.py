"""Key permissions per private method, as the spec's "API Key Permissions Required" lines say.

The table below is transcribed from ``../shared/kraken/spot-rest/openapi_v3.yaml`` (and the
change log for GetApiKeyInfo), not imported from the sandbox, so a wrong sandbox table fails.
Each entry lists the alternatives (any one suffices); each alternative is the permissions it
needs together.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.plugins.sandbox import ALL_PERMISSIONS, SandboxProcess

DENIED = {"error": ["EGeneral:Permission denied"]}

SPEC: dict[str, list[set[str]]] = {
    "Balance": [{"query_funds"}],
    "BalanceEx": [{"query_funds"}],
    "TradeBalance": [{"query_open"}],
    "OpenOrders": [{"query_open"}],
    "ClosedOrders": [{"query_closed"}],
    "QueryOrders": [{"query_open"}, {"query_closed"}],
    "OrderAmends": [{"query_open"}, {"query_closed"}],
    "TradesHistory": [{"query_closed"}],
    "QueryTrades": [{"query_closed"}],
    "Ledgers": [{"query_ledger"}],
    "QueryLedgers": [{"query_ledger"}],
    "TradeVolume": [{"query_funds"}],
    "AddOrder": [{"trade"}],
    "AmendOrder": [{"trade"}, {"cancel"}],
    "CancelOrder": [{"trade"}, {"cancel"}],
    "CancelAll": [{"trade"}, {"cancel"}],
    "CancelAllOrdersAfter": [{"trade"}, {"cancel"}],
    "CancelOrderBatch": [{"trade"}, {"cancel"}],
    "AddOrderBatch": [{"trade", "cancel"}],
    "EditOrder": [{"trade", "cancel"}],
    "GetWebSocketsToken": [{"websocket"}],
    "DepositMethods": [{"query_funds", "deposit"}],
    "DepositAddresses": [{"query_funds"}],
    "DepositStatus": [{"query_funds"}],
    "WithdrawMethods": [{"query_funds", "withdraw"}],
    "WithdrawAddresses": [{"query_funds", "withdraw"}],
    "WithdrawInfo": [{"query_funds", "withdraw"}],
    "Withdraw": [{"withdraw"}],
    "WithdrawStatus": [{"withdraw"}, {"query_ledger"}],
    "WalletTransfer": [{"query_funds"}],
    "CreateSubaccount": [{"withdraw"}],
    "AccountTransfer": [{"withdraw"}],
    "Earn/Allocate": [{"earn"}],
    "Earn/Deallocate": [{"earn"}],
    "Earn/AllocateStatus": [{"earn"}, {"query_funds"}],
    "Earn/DeallocateStatus": [{"earn"}, {"query_funds"}],
    "Earn/Strategies": [set()],
    "Earn/Allocations": [{"query_funds"}],
    "GetApiKeyInfo": [set()],
}


def _denying_sets(alternatives: list[set[str]]) -> list[set[str]]:
    """Permission sets that satisfy no alternative: drop one permission of every
    alternative (for AND rules, each one in turn)."""
    everything = set(ALL_PERMISSIONS)
    if any(not alt for alt in alternatives):
        return []
    if len(alternatives) == 1:
        return [everything - {name} for name in alternatives[0]]
    return [everything - set().union(*alternatives)]


@pytest.mark.parametrize("method", sorted(SPEC))
def test_method_permissions_follow_the_spec(sandbox: SandboxProcess, method: str) -> None:
    acct = sandbox.create_account({"USD": "100"})
    for alternative in SPEC[method]:
        key, secret = sandbox.create_key(acct, permissions=sorted(alternative))
        out = sandbox.private(key, secret, method, as_json=method.startswith("Earn/"))
        assert out != DENIED, f"{method} refused a key with {sorted(alternative)}"
        assert out.get("error") != ["EGeneral:Unknown method"]
    for permissions in _denying_sets(SPEC[method]):
        key, secret = sandbox.create_key(acct, permissions=sorted(permissions))
        out = sandbox.private(key, secret, method, as_json=method.startswith("Earn/"))
        assert out == DENIED, f"{method} allowed a key without {set(ALL_PERMISSIONS) - permissions}"


def test_query_orders_depends_on_the_order_status(sandbox: SandboxProcess) -> None:
    """QueryOrders needs the open- or the closed-orders permission "depending on status of
    order": a key with only the open one reads open orders but not closed ones."""
    acct = sandbox.create_account({"USD": "100000"})
    trader, trader_secret = sandbox.create_key(acct)
    order = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "1000"}
    open_id = sandbox.private(trader, trader_secret, "AddOrder", {**order, "volume": "0.01"})
    closed_id = sandbox.private(trader, trader_secret, "AddOrder", {**order, "volume": "0.02"})
    open_txid = open_id["result"]["txid"][0]
    closed_txid = closed_id["result"]["txid"][0]
    cancel = sandbox.private(trader, trader_secret, "CancelOrder", {"txid": closed_txid})
    assert cancel["error"] == []

    open_only, open_secret = sandbox.create_key(acct, permissions=["query_open"])
    seen = sandbox.private(open_only, open_secret, "QueryOrders", {"txid": open_txid})
    assert seen["result"][open_txid]["status"] == "open"
    assert sandbox.private(open_only, open_secret, "QueryOrders", {"txid": closed_txid}) == DENIED
    assert sandbox.private(open_only, open_secret, "OrderAmends", {"order_id": closed_txid}) == (
        DENIED
    )
    closed_only, closed_secret = sandbox.create_key(acct, permissions=["query_closed"])
    seen = sandbox.private(closed_only, closed_secret, "QueryOrders", {"txid": closed_txid})
    assert seen["result"][closed_txid]["status"] == "canceled"
    assert sandbox.private(closed_only, closed_secret, "QueryOrders", {"txid": open_txid}) == (
        DENIED
    )


def test_withdraw_cancel_needs_withdraw_except_for_wallet_transfers(
    sandbox: SandboxProcess,
) -> None:
    acct = sandbox.create_account({"USD": "100", "XBT": "1"})
    funds, funds_secret = sandbox.create_key(acct, permissions=["query_funds"])
    moved = sandbox.private(
        funds,
        funds_secret,
        "WalletTransfer",
        {"asset": "XBT", "from": "Spot Wallet", "to": "Futures Wallet", "amount": "0.1"},
    )
    refid = moved["result"]["refid"]
    # A wallet transfer needs no permission to cancel; it already settled, so: false.
    none, none_secret = sandbox.create_key(acct, permissions=[])
    out = sandbox.private(none, none_secret, "WithdrawCancel", {"asset": "XBT", "refid": refid})
    assert out == {"error": [], "result": False}
    # Anything else needs Withdraw.
    out = sandbox.private(none, none_secret, "WithdrawCancel", {"asset": "XBT", "refid": "FX1"})
    assert out == DENIED


async def _ws_request(url: str, message: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(json.dumps(message))
        async for frame in ws:
            data = json.loads(frame.data)
            if data.get("method") == message["method"]:
                result: dict[str, Any] = data
                return result
    raise AssertionError("no answer")


async def test_ws_trading_uses_the_permissions_of_the_tokens_key(
    sandbox: SandboxProcess,
) -> None:
    acct = sandbox.create_account({"USD": "100000"})
    reader, reader_secret = sandbox.create_key(acct, permissions=["websocket", "query_funds"])
    canceller, canceller_secret = sandbox.create_key(acct, permissions=["websocket", "cancel"])
    trader, trader_secret = sandbox.create_key(acct, permissions=["websocket", "trade"])
    tokens = {
        name: sandbox.private(key, secret, "GetWebSocketsToken")["result"]["token"]
        for name, key, secret in (
            ("reader", reader, reader_secret),
            ("canceller", canceller, canceller_secret),
            ("trader", trader, trader_secret),
        )
    }
    order = {
        "order_type": "limit",
        "side": "buy",
        "order_qty": 0.01,
        "symbol": "BTC/USD",
        "limit_price": 1000,
    }

    denied = await _ws_request(
        sandbox.ws_auth_url,
        {"method": "add_order", "params": {**order, "token": tokens["reader"]}},
    )
    assert denied["success"] is False
    assert denied["error"] == "EGeneral:Permission denied"
    denied = await _ws_request(
        sandbox.ws_auth_url,
        {"method": "add_order", "params": {**order, "token": tokens["canceller"]}},
    )
    assert denied["error"] == "EGeneral:Permission denied"
    placed = await _ws_request(
        sandbox.ws_auth_url,
        {"method": "add_order", "params": {**order, "token": tokens["trader"]}},
    )
    assert placed["success"] is True, placed
    order_id = placed["result"]["order_id"]
    denied = await _ws_request(
        sandbox.ws_auth_url,
        {"method": "cancel_order", "params": {"order_id": [order_id], "token": tokens["reader"]}},
    )
    assert denied["error"] == "EGeneral:Permission denied"
    cancelled = await _ws_request(
        sandbox.ws_auth_url,
        {
            "method": "cancel_order",
            "params": {"order_id": [order_id], "token": tokens["canceller"]},
        },
    )
    assert cancelled["success"] is True, cancelled
