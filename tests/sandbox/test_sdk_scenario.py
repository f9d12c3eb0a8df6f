"""python-kraken-sdk's own clients, unchanged, pointed at the sandbox: a full scenario."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from kraken.exceptions import KrakenInvalidArgumentsError, KrakenPermissionDeniedError
from kraken.spot import Earn, Funding, Market, SpotWSClient, Trade, User

from tests.plugins.sandbox import SandboxProcess


@pytest.fixture(scope="module")
def creds(sandbox: SandboxProcess) -> tuple[str, str, str]:
    acct = sandbox.create_account({"USD": "250000", "XBT": "3", "DOT": "500"})
    key, secret = sandbox.create_key(acct)
    return acct, key, secret


def test_market_client(sandbox: SandboxProcess) -> None:
    market = Market(url=sandbox.url)
    assert market.get_system_status()["status"] == "online"
    pairs = market.get_asset_pairs(pair=["XBTUSD", "ETH/USD"])
    assert set(pairs) == {"XXBTZUSD", "XETHZUSD"}
    assert pairs["XXBTZUSD"]["wsname"] == "XBT/USD"
    ticker = market.get_ticker(pair="BTC/USD")
    assert "XXBTZUSD" in ticker
    book = market.get_order_book(pair="XBTUSD", count=10)
    bids = book["XXBTZUSD"]["bids"]
    asks = book["XXBTZUSD"]["asks"]
    assert len(bids) == len(asks) == 10
    assert Decimal(bids[0][0]) < Decimal(asks[0][0])
    ohlc = market.get_ohlc(pair="XBTUSD", interval=5)
    assert ohlc["XXBTZUSD"]
    assert "last" in ohlc
    assert market.get_recent_trades(pair="XBTUSD")["XXBTZUSD"]
    assert "XXBT" in market.get_assets(assets=["XBT"])


def test_rest_scenario(sandbox: SandboxProcess, creds: tuple[str, str, str]) -> None:
    acct, key, secret = creds
    user = User(key=key, secret=secret, url=sandbox.url)
    trade = Trade(key=key, secret=secret, url=sandbox.url)
    funding = Funding(key=key, secret=secret, url=sandbox.url)
    earn = Earn(key=key, secret=secret, url=sandbox.url)

    balances = user.get_account_balance()
    assert balances["ZUSD"] == "250000.0000"
    assert user.get_balances()["XXBT"]["hold_trade"] == "0.0000000000"

    # Place a resting limit buy well below the market: it holds USD.
    res = trade.create_order(
        ordertype="limit", side="buy", pair="XBTUSD", volume="0.5", price="30000", userref=42
    )
    txid = res["txid"][0]
    assert user.get_balances()["ZUSD"]["hold_trade"] != "0.0000"
    opened = user.get_open_orders()["open"]
    assert opened[txid]["userref"] == 42

    # Amend in place (same txid), then cancel.
    amend = trade.amend_order(txid=txid, limit_price="31000", order_qty="0.4")
    assert amend["amend_id"].startswith("T")
    info = user.get_orders_info(txid=txid)[txid]
    assert info["descr"]["price"] == "31000.0"
    assert info["vol"] == "0.40000000"
    assert trade.cancel_order(txid=txid)["count"] == 1
    assert user.get_balances()["ZUSD"]["hold_trade"] == "0.0000"
    closed = user.get_closed_orders()["closed"]
    assert closed[txid]["status"] == "canceled"

    # A marketable order fills immediately; trades and ledgers appear.
    res = trade.create_order(ordertype="market", side="buy", pair="XBTUSD", volume="0.01")
    filled = user.get_orders_info(txid=res["txid"][0])
    assert filled[res["txid"][0]]["status"] == "closed"
    assert user.get_trades_history()["count"] >= 1
    assert user.get_ledgers_info(asset="XBT")["count"] >= 2

    # Validate-only orders never reach the book.
    v = trade.create_order(
        ordertype="limit", side="buy", pair="XBTUSD", volume="0.5", price="30000", validate=True
    )
    assert "txid" not in v

    # Deposit (control API) shows up in DepositStatus.
    sandbox.deposit(acct, "XBT", "0.25")
    deposits = funding.get_recent_deposits_status(asset="XBT")
    assert any(d["amount"] == "0.2500000000" for d in deposits)

    # Withdrawal to a registered address walks Initial → … → Success.
    sandbox.add_withdraw_address(acct, "XBT", "cold-wallet", "bc1qsandboxcoldwallet000000000000")
    info = funding.get_withdrawal_info(asset="XBT", key="cold-wallet", amount="0.1")
    assert info["fee"] == "0.00015000"
    ref = funding.withdraw_funds(asset="XBT", key="cold-wallet", amount="0.1")["refid"]
    status = {w["refid"]: w["status"] for w in funding.get_recent_withdraw_status(asset="XBT")}
    assert status[ref] == "Initial"
    sandbox.advance(60)
    status = {w["refid"]: w["status"] for w in funding.get_recent_withdraw_status(asset="XBT")}
    assert status[ref] == "Success"
    with pytest.raises(Exception, match="Unknown withdraw key"):
        funding.withdraw_funds(asset="XBT", key="nope", amount="0.1")

    # Earn: allocate, settle, deallocate.
    both = earn.list_earn_strategies(asset="DOT", lock_type=["flex", "bonded"])["items"]
    assert {s["lock_type"]["type"] for s in both} == {"flex", "bonded"}
    strategies = earn.list_earn_strategies(asset="DOT")["items"]
    flex = next(s for s in strategies if s["lock_type"]["type"] == "instant")
    assert earn.allocate_earn_funds(amount="100", strategy_id=flex["id"]) is True
    assert earn.get_allocation_status(strategy_id=flex["id"])["pending"] is True
    sandbox.advance(30)
    assert earn.get_allocation_status(strategy_id=flex["id"])["pending"] is False
    assert "DOT.F" not in user.get_account_balance()  # ".F" deprecated on 13 Nov 2025
    allocs = earn.list_earn_allocations()["items"]
    assert any(a["strategy_id"] == flex["id"] for a in allocs)
    assert earn.deallocate_earn_funds(amount="50", strategy_id=flex["id"]) is True
    sandbox.advance(30)
    assert earn.get_deallocation_status(strategy_id=flex["id"])["pending"] is False
    dot = Decimal(user.get_account_balance()["DOT"])
    assert dot == Decimal("450")


def test_sdk_batch_edit_and_account_calls(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "100000", "XBT": "2"})
    key, secret = sandbox.create_key(acct)
    user = User(key=key, secret=secret, url=sandbox.url)
    trade = Trade(key=key, secret=secret, url=sandbox.url)
    batch = trade.create_order_batch(
        pair="BTC/USD",
        orders=[
            {
                "ordertype": "limit",
                "type": "buy",
                "price": "30000",
                "volume": "0.01",
                "cl_ord_id": "sdk-b1",
            },
            {"ordertype": "limit", "type": "sell", "price": "99000", "volume": "0.01"},
        ],
    )
    ids = [o["txid"] for o in batch["orders"]]
    assert len(ids) == 2
    edited = trade.edit_order(txid=ids[1], pair="XBTUSD", price="98000")
    assert edited["originaltxid"] == ids[1]
    assert trade.cancel_order_batch(orders=[ids[0], edited["txid"]])["count"] == 2
    after = trade.cancel_all_orders_after_x(timeout=60)
    assert after["triggerTime"] > after["currentTime"]
    assert trade.cancel_all_orders_after_x(timeout=0)["triggerTime"] == "0"
    vol = user.get_trade_volume(pair="XBTUSD")
    assert vol["fees"]["XXBTZUSD"]["fee"] == "0.4000"
    assert Decimal(user.get_balance(currency="XBT")["available_balance"]) == Decimal("2")
    assert user.get_trade_balance()["eb"]
    assert trade.cancel_all_orders()["count"] == 0


def test_sdk_funding_and_subaccount_calls(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "1000", "XBT": "2", "EUR": "100"})
    key, secret = sandbox.create_key(acct)
    funding = Funding(key=key, secret=secret, url=sandbox.url)
    user = User(key=key, secret=secret, url=sandbox.url)
    assert funding.get_deposit_methods(asset="XBT")[0]["method"] == "Bitcoin"
    first = funding.get_deposit_address(asset="XBT", method="Bitcoin")
    fresh = funding.get_deposit_address(asset="XBT", method="Bitcoin", new=True)
    assert fresh[0]["new"] is True
    assert fresh[0]["address"] != first[0]["address"]
    assert any(m["method"] == "Bitcoin" for m in funding.withdraw_methods(asset="XBT"))
    sandbox.add_withdraw_address(acct, "XBT", "sdk-w", "bc1qsdkwithdrawaddress0000000000000")
    addrs = funding.withdraw_addresses(asset="XBT", verified=True)
    assert addrs[0]["key"] == "sdk-w"
    ref = funding.withdraw_funds(asset="XBT", key="sdk-w", amount="0.5")["refid"]
    assert funding.cancel_withdraw(asset="XBT", refid=ref) is True
    assert funding.wallet_transfer(
        asset="EUR", from_="Spot Wallet", to_="Futures Wallet", amount="10"
    )["refid"]
    created: object = user.create_subaccount(username="sdk-sub", email="sdk@example.test")
    assert created is True  # the SDK annotates dict; Kraken answers a bare `true`
    sub = sandbox.create_subaccount(acct, "sdk-sub-2")
    moved = user.account_transfer(asset="XBT", amount="0.25", from_=acct, to_=sub)
    assert moved["status"] == "complete"


async def test_ws_client_with_bare_base_urls(sandbox: SandboxProcess) -> None:
    """ws_url = auth_ws_url = "ws://host:port": the SDK appends "/v2" to both."""
    acct = sandbox.create_account({"USD": "1000"})
    key, secret = sandbox.create_key(acct)
    messages: list[dict[str, Any]] = []

    async def on_message(msg: dict[str, Any]) -> None:
        messages.append(msg)

    base = f"ws://{sandbox.host}:{sandbox.port}"
    client = SpotWSClient(
        key=key,
        secret=secret,
        callback=on_message,
        rest_url=sandbox.url,
        ws_url=base,
        auth_ws_url=base,
    )
    await client.start()
    try:
        await client.subscribe(params={"channel": "ticker", "symbol": ["BTC/USD"]})
        await client.subscribe(params={"channel": "balances"})
        await _collect(messages, lambda m: m.get("channel") == "ticker")
        await _collect(
            messages, lambda m: m.get("channel") == "balances" and m.get("type") == "snapshot"
        )
    finally:
        await client.close()


def test_permission_error_maps_to_sdk_exception(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "100"})
    key, secret = sandbox.create_key(acct, permissions=["query_funds", "query_ledger"])
    trade = Trade(key=key, secret=secret, url=sandbox.url)
    with pytest.raises(KrakenPermissionDeniedError):
        trade.create_order(ordertype="limit", side="buy", pair="XBTUSD", volume="1", price="100")
    user = User(key=key, secret=secret, url=sandbox.url)
    with pytest.raises(KrakenInvalidArgumentsError):
        user.get_ledgers_info(asset="XBT", extra_params={"bogus": "1"})


async def _collect(client_msgs: list[dict[str, Any]], pred: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(pred(m) for m in client_msgs):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"message not received; got {client_msgs[-5:]}")


async def test_ws_client_executions(sandbox: SandboxProcess) -> None:
    acct = sandbox.create_account({"USD": "100000", "XBT": "1"})
    key, secret = sandbox.create_key(acct)
    messages: list[dict[str, Any]] = []

    async def on_message(msg: dict[str, Any]) -> None:
        messages.append(msg)

    client = SpotWSClient(
        key=key,
        secret=secret,
        callback=on_message,
        rest_url=sandbox.url,
        ws_url=sandbox.ws_base,
        auth_ws_url=sandbox.ws_auth_base,
    )
    await client.start()
    try:
        await client.subscribe(params={"channel": "book", "symbol": ["BTC/USD"]})
        await client.subscribe(params={"channel": "executions", "snap_orders": True})
        await client.subscribe(params={"channel": "balances"})
        await _collect(messages, lambda m: m.get("channel") == "book")
        await _collect(
            messages, lambda m: m.get("channel") == "executions" and m.get("type") == "snapshot"
        )
        await _collect(messages, lambda m: m.get("channel") == "balances")

        # An order over REST shows on executions: pending_new → new.
        trade = Trade(key=key, secret=secret, url=sandbox.url)
        txid = (
            await asyncio.to_thread(
                trade.create_order,
                ordertype="limit",
                side="buy",
                pair="XBTUSD",
                volume="0.1",
                price="40000",
            )
        )["txid"][0]

        def exec_of(oid: str, kind: str) -> Any:
            return lambda m: (
                m.get("channel") == "executions"
                and any(
                    d.get("order_id") == oid and d.get("exec_type") == kind
                    for d in m.get("data", [])
                )
            )

        await _collect(messages, exec_of(txid, "pending_new"))
        await _collect(messages, exec_of(txid, "new"))

        # Moving the market through the order fills it as maker: trade → filled.
        await asyncio.to_thread(sandbox.move_price, "XBTUSD", "39000")
        await _collect(messages, exec_of(txid, "trade"))
        await _collect(messages, exec_of(txid, "filled"))
        await _collect(
            messages, lambda m: m.get("channel") == "balances" and m.get("type") == "update"
        )

        # Trade over the socket: add_order then cancel_order.
        await client.send_message(
            {
                "method": "add_order",
                "params": {
                    "order_type": "limit",
                    "side": "sell",
                    "order_qty": 0.05,
                    "symbol": "BTC/USD",
                    "limit_price": 90000,
                    "order_userref": 7,
                },
            },
            raw=False,
        )
        await _collect(messages, lambda m: m.get("method") == "add_order" and m.get("success"))
        oid = next(m for m in messages if m.get("method") == "add_order")["result"]["order_id"]
        await _collect(messages, exec_of(oid, "new"))
        await client.send_message({"method": "cancel_order", "params": {"order_id": [oid]}})
        await _collect(messages, exec_of(oid, "canceled"))
    finally:
        await client.close()
        await asyncio.to_thread(sandbox.move_price, "XBTUSD", "65000")
