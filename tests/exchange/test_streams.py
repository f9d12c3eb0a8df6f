"""The private streams (apps/exchange/streams) against the real sandbox, PostgreSQL and Redis:
one authenticated WebSocket v2 connection per account, turned into exchange's records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from django.db import transaction

from apps.exchange import services
from apps.exchange.balances import asset_balance, spendable
from apps.exchange.models import (
    AccountBalance,
    BalanceSource,
    ExchangeFill,
    ExchangeOrder,
    Kind,
    LedgerEntry,
    State,
)
from apps.exchange.streams.hooks import stream_hook_register, streams_tick_register
from apps.orgs.models import Membership
from tests.exchange.conftest import Reader, eventually, make_reader

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


def kraken_all(reader: Reader, sandbox: Any, method: str, field: str) -> dict[str, Any]:
    """Every entry of a paged history call (TradesHistory, Ledgers), asked with the other key."""
    entries: dict[str, Any] = {}
    while True:
        page = reader.direct(sandbox, method, {"ofs": len(entries)})
        entries.update(page[field])
        if not page[field] or len(entries) >= int(page["count"]):
            return entries


def recorded_fills(reader: Reader) -> set[str]:
    fills = ExchangeFill.objects.filter(account=reader.account)
    return set(fills.values_list("trade_id", flat=True))


def recorded_ledger(reader: Reader) -> set[str]:
    entries = LedgerEntry.objects.filter(account=reader.account)
    return set(entries.values_list("ledger_id", flat=True))


def nothing_missing(reader: Reader, sandbox: Any) -> None:
    """Every fill Kraken has for the account now, and every ledger entry of those fills, is
    recorded, once. (The deposits that opened the account came before any stream.) Kraken is
    asked once: the history is final when the orders are, and polling it would spend the
    other key's rate budget."""
    trades = kraken_all(reader, sandbox, "TradesHistory", "trades")
    ledger = {
        ledger_id
        for ledger_id, entry in kraken_all(reader, sandbox, "Ledgers", "ledger").items()
        if entry["refid"] in trades
    }
    assert ledger
    eventually(
        lambda: (
            recorded_fills(reader) == set(trades)
            and recorded_ledger(reader) - deposits(reader) == ledger
        )
    )


def deposits(reader: Reader) -> set[str]:
    entries = LedgerEntry.objects.filter(account=reader.account, type="deposit")
    return set(entries.values_list("ledger_id", flat=True))


def filled(order: ExchangeOrder) -> Decimal:
    return sum((fill.qty for fill in order.fills.all()), Decimal(0))


def closed_order(reader: Reader, txid: str) -> ExchangeOrder | None:
    order = ExchangeOrder.objects.filter(account=reader.account, txid=txid).first()
    return order if order is not None and order.status == "closed" else None


def spot_matches_kraken(reader: Reader, sandbox: Any, *assets: str) -> None:
    """The record's spot wallets come to equal what BalanceEx says now (asked once, with
    the other key)."""
    kraken = reader.direct(sandbox, "BalanceEx")
    names = {"BTC": "XXBT", "USD": "ZUSD"}
    expected = {asset: Decimal(kraken[names.get(asset, asset)]["balance"]) for asset in assets}

    def recorded() -> dict[str, Decimal]:
        rows = AccountBalance.objects.filter(
            account=reader.account, asset__in=assets, wallet_type="spot", wallet_id="main"
        )
        return {row.asset: row.balance for row in rows}

    eventually(lambda: recorded() == expected)


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
    assert order.avg_price
    assert order.avg_price > 0
    assert order.cost > 0
    assert order.pair == "BTC/USD"
    assert order.side == "buy"
    assert order.operation is None  # external: not placed by the portal
    # A market order may take several levels of the book: one fill per level.
    eventually(lambda: filled(order) == Decimal("0.01"))
    fills = list(order.fills.all())
    assert {fill.liquidity for fill in fills} == {"t"}
    assert {fee["asset"] for fill in fills for fee in fill.fees} == {"USD"}
    order.refresh_from_db()
    assert order.fee == sum(Decimal(fee["qty"]) for fill in fills for fee in fill.fees)
    assert order.fee > 0
    # The balances follow the ledger entries the `balances` channel streams.
    spot_matches_kraken(reader, exchange_sandbox, "BTC", "USD")
    assert asset_balance(account=reader.account, asset="BTC").spot == Decimal("5.01")
    nothing_missing(reader, exchange_sandbox)
    # The hooks saw it, as an external order.
    eventually(lambda: (txid, "closed", False) in seen["orders"])
    # Hooks run after the records commit, off the recording path: wait for them too.
    eventually(lambda: sorted(seen["fills"]) == sorted((fill.trade_id, False) for fill in fills))
    eventually(lambda: {"BTC", "USD"} <= set(seen["balances"]))
    eventually(lambda: reader.account.pk in seen["ticks"])
    # And the portal made no REST call with the account's key for any of it.
    after = rest_calls(exchange_sandbox, reader.api_key)
    assert after == before


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
    # A first fill while connected: the record has fills and ledger entries.
    first = market_buy(reader, exchange_sandbox)
    eventually(lambda: closed_order(reader, first))
    nothing_missing(reader, exchange_sandbox)
    reconnects = stream.status.reconnects
    # The sandbox cuts the account's private sockets just before the next fill streams.
    exchange_sandbox.set_faults([{"kind": "ws_drop_on_fill", "probability": 1.0, "count": 1}])
    txid = market_buy(reader, exchange_sandbox, volume="0.02")
    order = eventually(lambda: closed_order(reader, txid))
    assert stream.status.reconnects > reconnects  # the socket did drop
    assert order.vol_exec == Decimal("0.02")
    eventually(lambda: filled(order) == Decimal("0.02"))
    # Every fill and ledger entry, the lost fill's too (snapshot, Ledgers after the reconnect).
    nothing_missing(reader, exchange_sandbox)
    spot_matches_kraken(reader, exchange_sandbox, "BTC", "USD")
    assert asset_balance(account=reader.account, asset="BTC").spot == Decimal("5.03")


def test_fills_beyond_the_50_fill_snapshot_come_from_trades_history(
    reader: Reader, run_streams: Any, exchange_sandbox: Any
) -> None:
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)
    first = market_buy(reader, exchange_sandbox, volume="0.001")
    eventually(lambda: closed_order(reader, first))
    streams.stop()  # the streams are down (a deploy, a crash) while the account trades on
    txids = [market_buy(reader, exchange_sandbox, volume="0.001") for _ in range(55)]
    before = rest_calls(exchange_sandbox, reader.api_key)
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)
    assert len(kraken_all(reader, exchange_sandbox, "TradesHistory", "trades")) > 50
    nothing_missing(reader, exchange_sandbox)
    after = rest_calls(exchange_sandbox, reader.api_key)
    assert after.get("TradesHistory", 0) > before.get("TradesHistory", 0)
    # Every order that closed while the streams were down is recorded closed (QueryOrders).
    closed = ExchangeOrder.objects.filter(account=reader.account, txid__in=txids, status="closed")
    assert closed.count() == 55
    spot_matches_kraken(reader, exchange_sandbox, "BTC", "USD")


def test_a_sale_that_draws_on_auto_earn_moves_both_wallets(
    reader: Reader, run_streams: Any, exchange_sandbox: Any
) -> None:
    """Kraken spends auto-earn (`flex`) funds when the spot wallet is short: the stream moves
    both wallets (the update's `balance` is the asset's total, not the wallet's)."""
    exchange_sandbox.control(
        "POST",
        f"/sandbox/accounts/{reader.account_id}/auto-earn",
        {"asset": "DOT", "amount": "960"},
    )
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)
    assert asset_balance(account=reader.account, asset="DOT").spot == Decimal("40")
    txid = reader.direct(
        exchange_sandbox,
        "AddOrder",
        {"pair": "DOTUSD", "type": "sell", "ordertype": "market", "volume": "100"},
    )["txid"][0]
    eventually(lambda: closed_order(reader, txid))
    streamed = eventually(
        lambda: (b := asset_balance(account=reader.account, asset="DOT")).flex < 960 and b
    )
    assert streamed.spot == Decimal(0)
    assert Decimal("900") <= streamed.flex < Decimal("900.01")  # 960 - the 60 the spot lacked
    assert Decimal("900") <= streamed.total < Decimal("900.01")
    # What Kraken's REST says (BalanceEx + Earn/Allocations) agrees.
    services.balances_refresh(account=reader.account)
    rest = asset_balance(account=reader.account, asset="DOT")
    assert rest.spot == streamed.spot
    assert streamed.flex <= rest.flex < streamed.flex + Decimal("0.01")


@pytest.mark.usefixtures("eager_tasks")
def test_an_order_the_portal_placed_is_linked_to_its_operation(
    reader: Reader, run_streams: Any, exchange_sandbox: Any, owner: Membership
) -> None:
    seen: list[tuple[str, bool]] = []
    stream_hook_register(on_fill=lambda fill, portal: seen.append((fill.trade_id, portal)))
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)
    with transaction.atomic():
        operation = services.operation_prepare(
            org=owner.org,
            credential=reader.credential,
            kind=Kind.ADD_ORDER,
            params={"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.01"},
            requested_by=owner.user,
        )
    operation.refresh_from_db()
    assert operation.state == State.DONE
    txid = operation.result["txid"][0]
    order = eventually(lambda: closed_order(reader, txid))
    assert order.operation == operation
    assert order.cl_ord_id == operation.reference["cl_ord_id"]
    assert ExchangeOrder.objects.filter(account=reader.account).count() == 1  # one record
    eventually(lambda: filled(order) == Decimal("0.01"))
    fills = {fill.trade_id for fill in order.fills.all()}
    eventually(lambda: {trade_id for trade_id, _ in seen} == fills)
    assert all(portal for _, portal in seen)


def test_the_token_is_renewed_in_the_background_and_a_refused_one_replaced(
    reader: Reader, run_streams: Any, exchange_sandbox: Any, settings: Any
) -> None:
    settings.STREAMS_TOKEN_RENEW = 1.5
    streams = run_streams()
    stream = streams.wait_subscribed(reader.account.pk)
    # Renewed while connected, so a reconnect has a young token in hand.
    eventually(lambda: rest_calls(exchange_sandbox, reader.api_key)["GetWebSocketsToken"] >= 3)
    assert stream.subscribed.is_set()
    # Every token in hand expires (the sandbox's clock jumps past 15 minutes) and the socket
    # drops: Kraken refuses the old token, the stream fetches a new one and subscribes again.
    settings.STREAMS_TOKEN_RENEW = 3600
    settings.STREAMS_TOKEN_MAX_AGE = 3600
    exchange_sandbox.advance(1000)
    reconnects = stream.status.reconnects
    exchange_sandbox.set_faults([{"kind": "ws_drop_on_fill", "probability": 1.0, "count": 1}])
    txid = market_buy(reader, exchange_sandbox)
    eventually(lambda: stream.status.reconnects > reconnects and stream.subscribed.is_set())
    eventually(lambda: closed_order(reader, txid))
    assert "token" in stream.status.last_error.lower()


def test_holds_follow_open_orders_without_a_rest_call(
    reader: Reader, run_streams: Any, exchange_sandbox: Any
) -> None:
    """Kraken's `balances` channel carries no holds: the stream derives them from the open
    orders it records, and they agree with BalanceEx's hold_trade."""
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)
    before = rest_calls(exchange_sandbox, reader.api_key)
    sell = reader.direct(
        exchange_sandbox,
        "AddOrder",
        {"pair": "XBTUSD", "type": "sell", "ordertype": "limit", "volume": "2", "price": "9999999"},
    )["txid"][0]
    buy = reader.direct(
        exchange_sandbox,
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.5", "price": "1000"},
    )["txid"][0]
    eventually(lambda: asset_balance(account=reader.account, asset="BTC").held == Decimal("2"))
    eventually(lambda: asset_balance(account=reader.account, asset="USD").held > 0)
    assert spendable(account=reader.account, asset="BTC") == Decimal("3")
    assert rest_calls(exchange_sandbox, reader.api_key) == before
    kraken = reader.direct(exchange_sandbox, "BalanceEx")
    assert asset_balance(account=reader.account, asset="BTC").held == Decimal(
        kraken["XXBT"]["hold_trade"]
    )
    assert asset_balance(account=reader.account, asset="USD").held == Decimal(
        kraken["ZUSD"]["hold_trade"]
    )
    # Cancelled: nothing held any more.
    reader.direct(exchange_sandbox, "CancelOrder", {"txid": sell})
    reader.direct(exchange_sandbox, "CancelOrder", {"txid": buy})
    eventually(lambda: asset_balance(account=reader.account, asset="BTC").held == 0)
    eventually(lambda: asset_balance(account=reader.account, asset="USD").held == 0)
    assert spendable(account=reader.account, asset="BTC") == Decimal("5")


def test_a_key_that_cannot_read_the_ledger_still_streams(
    owner: Membership, run_streams: Any, exchange_sandbox: Any
) -> None:
    """A refused gap fill (no Query Ledger permission) is logged, not retried for ever: the
    stream goes on with what the snapshots give (orders, fills, balances)."""
    reader = make_reader(exchange_sandbox, owner, without=frozenset({"query_ledger"}))
    streams = run_streams()
    stream = streams.wait_subscribed(reader.account.pk)
    first = market_buy(reader, exchange_sandbox)
    eventually(lambda: closed_order(reader, first))
    exchange_sandbox.set_faults([{"kind": "ws_drop_on_fill", "probability": 1.0, "count": 1}])
    txid = market_buy(reader, exchange_sandbox, volume="0.02")
    order = eventually(lambda: closed_order(reader, txid))
    eventually(lambda: filled(order) == Decimal("0.02"))
    spot_matches_kraken(reader, exchange_sandbox, "BTC", "USD")
    eventually(lambda: stream.subscribed.is_set())
    assert "PermissionDenied" in stream.status.last_error
