"""The private streams (apps/exchange/streams) against the real sandbox, PostgreSQL and Redis:
one authenticated WebSocket v2 connection per account, turned into exchange's records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest

from apps.exchange import services
from apps.exchange.balances import asset_balance
from apps.exchange.models import (
    AccountBalance,
    BalanceSource,
    ExchangeFill,
    ExchangeOrder,
    LedgerEntry,
)
from apps.exchange.streams.hooks import stream_hook_register, streams_tick_register
from apps.orgs.models import Membership
from tests.exchange.conftest import Reader, eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def rest_calls(sandbox: Any, api_key: str) -> dict[str, int]:
    """The sandbox's count of authenticated REST calls made with `api_key`, per method."""
    path = f"/sandbox/limits?key={quote(api_key, safe='')}"
    calls: dict[str, int] = sandbox.control("GET", path)["calls"]
    return calls


def market_buy(reader: Reader, sandbox: Any, volume: str = "0.01") -> str:
    """Another client (its own key on the same account) buys at market: filled at once."""
    result = reader.direct(
        sandbox,
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": volume},
    )
    txid: str = result["txid"][0]
    return txid


def closed_order(reader: Reader, txid: str) -> ExchangeOrder | None:
    order = ExchangeOrder.objects.filter(account=reader.account, txid=txid).first()
    return order if order is not None and order.status == "closed" else None


def spot_matches_kraken(reader: Reader, sandbox: Any, *assets: str) -> bool:
    """The record's spot wallets equal what BalanceEx says now (asked with the other key)."""
    kraken = reader.direct(sandbox, "BalanceEx")
    names = {"BTC": "XXBT", "USD": "ZUSD"}
    for asset in assets:
        row = AccountBalance.objects.filter(
            account=reader.account, asset=asset, wallet_type="spot", wallet_id="main"
        ).first()
        if row is None or row.balance != Decimal(kraken[names.get(asset, asset)]["balance"]):
            return False
    return True


def test_an_order_filled_by_another_client_reaches_the_record_without_a_rest_call(
    reader: Reader, run_streams: Any, exchange_sandbox: Any
) -> None:
    seen: dict[str, list[Any]] = {"orders": [], "fills": [], "balances": [], "ticks": []}
    stream_hook_register(
        on_order=lambda order, portal: seen["orders"].append((order.txid, order.status, portal)),
        on_fill=lambda fill, portal: seen["fills"].append((fill.trade_id, portal)),
        on_balance=lambda row: seen["balances"].append(row.asset),
    )
    streams_tick_register(lambda account: seen["ticks"].append(account.pk))
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)
    # The snapshot wrote the balances (no REST refresh has run).
    rows = AccountBalance.objects.filter(account=reader.account)
    assert {row.source for row in rows} == {BalanceSource.STREAM}
    assert asset_balance(account=reader.account, asset="BTC").spot == Decimal("5")
    before = rest_calls(exchange_sandbox, reader.api_key)
    assert before["GetWebSocketsToken"] >= 1  # the count sees the portal's calls

    txid = market_buy(reader, exchange_sandbox)

    order = eventually(lambda: closed_order(reader, txid))
    assert order.vol_exec == Decimal("0.01")
    assert order.avg_price and order.avg_price > 0
    assert order.cost > 0
    assert order.pair == "BTC/USD"
    assert order.side == "buy"
    assert order.operation is None  # external: not placed by the portal
    fill = eventually(lambda: ExchangeFill.objects.filter(account=reader.account).first())
    assert fill.order == order
    assert fill.qty == Decimal("0.01")
    assert fill.liquidity == "t"
    assert [fee["asset"] for fee in fill.fees] == ["USD"]
    assert order.fee == sum(Decimal(fee["qty"]) for fee in fill.fees) > 0
    # The balances follow the ledger entries the `balances` channel streams.
    eventually(lambda: spot_matches_kraken(reader, exchange_sandbox, "BTC", "USD"))
    assert LedgerEntry.objects.filter(account=reader.account, type="trade").count() == 2
    assert asset_balance(account=reader.account, asset="BTC").spot == Decimal("5.01")
    # The hooks saw it, as an external order.
    eventually(lambda: (txid, "closed", False) in seen["orders"])
    assert seen["fills"] == [(fill.trade_id, False)]
    assert {"BTC", "USD"} <= set(seen["balances"])
    eventually(lambda: reader.account.pk in seen["ticks"])
    # And the portal made no REST call with the account's key for any of it.
    assert rest_calls(exchange_sandbox, reader.api_key) == before


def test_the_balances_snapshot_is_earn_aware(
    reader: Reader, run_streams: Any, exchange_sandbox: Any
) -> None:
    exchange_sandbox.control(
        "POST", f"/sandbox/accounts/{reader.account_id}/auto-earn", {"asset": "DOT", "amount": "60"}
    )
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)
    dot = asset_balance(account=reader.account, asset="DOT")
    assert dot.spot == Decimal("940")
    assert Decimal("60") <= dot.flex < Decimal("60.001")
    assert Decimal("1000") <= dot.total < Decimal("1000.001")
    assert dot.spendable == dot.total  # auto-earn is spendable
    # A REST refresh agrees with the stream.
    services.balances_refresh(account=reader.account)
    again = asset_balance(account=reader.account, asset="DOT")
    assert again.spot == dot.spot
    assert Decimal("60") <= again.flex < Decimal("60.001")


def test_a_socket_dropped_during_a_fill_loses_nothing(
    reader: Reader, run_streams: Any, exchange_sandbox: Any
) -> None:
    streams = run_streams()
    stream = streams.wait_subscribed(reader.account.pk)
    # A first fill while connected: the ledger and the fills have a known end.
    first = market_buy(reader, exchange_sandbox)
    eventually(lambda: closed_order(reader, first))
    eventually(lambda: LedgerEntry.objects.filter(account=reader.account).count() == 2)
    reconnects = stream.status.reconnects
    # The sandbox cuts the account's private sockets just before the next fill streams.
    exchange_sandbox.set_faults([{"kind": "ws_drop_on_fill", "probability": 1.0, "count": 1}])
    txid = market_buy(reader, exchange_sandbox, volume="0.02")
    order = eventually(lambda: closed_order(reader, txid))
    assert stream.status.reconnects > reconnects  # the socket did drop
    assert order.vol_exec == Decimal("0.02")
    fill = eventually(
        lambda: ExchangeFill.objects.filter(account=reader.account, order=order).first()
    )
    assert fill.qty == Decimal("0.02")
    kraken_trades = reader.direct(exchange_sandbox, "TradesHistory")["trades"]
    assert set(
        ExchangeFill.objects.filter(account=reader.account).values_list("trade_id", flat=True)
    ) == set(kraken_trades)
    # Both fills' ledger entries (the second pair came from Ledgers after the reconnect).
    kraken_ledger = reader.direct(exchange_sandbox, "Ledgers")["ledger"]
    eventually(
        lambda: (
            set(
                LedgerEntry.objects.filter(account=reader.account).values_list(
                    "ledger_id", flat=True
                )
            )
            == set(kraken_ledger)
        )
    )
    eventually(lambda: spot_matches_kraken(reader, exchange_sandbox, "BTC", "USD"))
    assert asset_balance(account=reader.account, asset="BTC").spot == Decimal("5.03")


def test_fills_beyond_the_50_fill_snapshot_come_from_trades_history(
    reader: Reader, run_streams: Any, exchange_sandbox: Any
) -> None:
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)
    first = market_buy(reader, exchange_sandbox, volume="0.001")
    eventually(lambda: closed_order(reader, first))
    streams.stop()  # the streams are down (a deploy, a crash) while the account trades on
    for _ in range(55):
        market_buy(reader, exchange_sandbox, volume="0.001")
    before = rest_calls(exchange_sandbox, reader.api_key)
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)
    kraken_trades = reader.direct(exchange_sandbox, "TradesHistory")["trades"]
    assert len(kraken_trades) == 50  # Kraken's page: the count says how many there are
    eventually(lambda: ExchangeFill.objects.filter(account=reader.account).count() == 56)
    after = rest_calls(exchange_sandbox, reader.api_key)
    assert after.get("TradesHistory", 0) > before.get("TradesHistory", 0)
    # Every order closed while the streams were down is recorded closed (QueryOrders).
    eventually(
        lambda: ExchangeOrder.objects.filter(account=reader.account, status="closed").count() == 56
    )
    eventually(lambda: spot_matches_kraken(reader, exchange_sandbox, "BTC", "USD"))
