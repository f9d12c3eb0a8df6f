"""The desk from the private streams' hooks (apps.exchange.streams.hooks): Kraken's word on an
order updates ours, fills join its history, an order placed outside the portal on the account
appears marked external; the dead man's switch is armed by a trader and refreshed by the
streams process's tick, never by a browser tab."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.exchange.models import ExchangeFill, ExchangeOrder
from apps.exchange.streams.hooks import (
    fill_hooks_on_commit,
    order_hooks_on_commit,
    stream_hooks_clear,
    tick_hooks_run,
)
from apps.orgs.models import Membership
from apps.trading import services, streams
from apps.trading.apps import register_stream_hooks
from apps.trading.models import DeadMansSwitch, Order, OrderEvent, OrderState
from tests.trading.conftest import TradingDesk, limit_ticket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


@pytest.fixture(autouse=True)
def stream_hooks() -> Any:
    stream_hooks_clear()
    register_stream_hooks()
    yield
    stream_hooks_clear()
    register_stream_hooks()


def test_an_order_placed_outside_the_portal_appears_marked_external(
    trading_desk: TradingDesk, exchange_sandbox: Any
) -> None:
    placed = trading_desk.look(
        exchange_sandbox,
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "sell",
            "ordertype": "limit",
            "volume": "0.02",
            "price": "90000",
        },
    )
    txid = placed["txid"][0]

    # What the streams process records, then hands to the hooks.
    with transaction.atomic():
        exchange_order = ExchangeOrder.objects.create(
            account=trading_desk.account,
            txid=txid,
            pair="XBT/USD",
            side="sell",
            order_type="limit",
            status="open",
            vol=Decimal("0.02"),
            price=Decimal("90000"),
        )
        order_hooks_on_commit(exchange_order, placed_by_portal=False)

    order = Order.objects.get(txid=txid)
    assert order.external
    assert order.placed_by is None
    assert order.pair == "BTC/USD"
    assert order.state == OrderState.OPEN
    assert order.events.get().kind == OrderEvent.Kind.EXTERNAL

    # Cancelled outside the portal too.
    trading_desk.look(exchange_sandbox, "CancelOrder", {"txid": txid})
    with transaction.atomic():
        ExchangeOrder.objects.filter(pk=exchange_order.pk).update(status="canceled")
        exchange_order.refresh_from_db()
        order_hooks_on_commit(exchange_order, placed_by_portal=False)
    order.refresh_from_db()
    assert order.state == OrderState.CANCELED


def test_fills_and_kraken_status_update_the_portals_order(
    trading_desk: TradingDesk, trader: Membership
) -> None:
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    order.refresh_from_db()
    exchange_order = order.exchange_order
    assert exchange_order is not None

    with transaction.atomic():
        fill = ExchangeFill.objects.create(
            account=trading_desk.account,
            trade_id="TFILL-1",
            order=exchange_order,
            order_txid=order.txid,
            pair="XBT/USD",
            side="buy",
            price=Decimal("1000"),
            qty=Decimal("0.01"),
            cost=Decimal("10"),
            fees=[{"asset": "USD", "qty": "0.026"}],
            liquidity="m",
            executed_at=timezone.now(),
        )
        ExchangeOrder.objects.filter(pk=exchange_order.pk).update(
            status="closed", vol_exec=Decimal("0.01"), avg_price=Decimal("1000")
        )
        exchange_order.refresh_from_db()
        fill_hooks_on_commit(fill, placed_by_portal=True)
        order_hooks_on_commit(exchange_order, placed_by_portal=True)

    order.refresh_from_db()
    assert order.state == OrderState.FILLED
    assert order.filled_volume == Decimal("0.01")
    assert order.avg_price == Decimal("1000")
    messages = list(order.events.values_list("message", flat=True))
    assert "Filled 0.01 at 1000 (maker)" in messages
    assert "Kraken: closed" in messages


def test_the_dead_mans_switch_is_refreshed_by_the_streams_tick_and_fires_when_it_stops(
    trading_desk: TradingDesk, trader: Membership, exchange_sandbox: Any
) -> None:
    order = services.order_submit(membership=trader, ticket=limit_ticket(trading_desk.account))
    with pytest.raises(ValidationError) as short:
        streams.dead_mans_switch_arm(membership=trader, account=trading_desk.account, timeout=10)
    assert short.value.messages == [streams.DMS_TOO_SHORT.format(minimum=streams.minimum_timeout())]

    switch = streams.dead_mans_switch_arm(
        membership=trader, account=trading_desk.account, timeout=120
    )
    assert switch.armed
    assert switch.trigger_at is not None
    first = switch.last_refreshed_at

    # The streams process's ticks, 100 s apart on Kraken's clock, keep pushing the timer out:
    # 200 s after arming (past the first 120 s) the order is still there.
    exchange_sandbox.advance(100)
    tick_hooks_run(trading_desk.account)
    exchange_sandbox.advance(100)
    tick_hooks_run(trading_desk.account)
    switch.refresh_from_db()
    assert switch.last_refreshed_at is not None
    assert first is not None
    assert switch.last_refreshed_at > first
    order.refresh_from_db()
    assert order.txid in trading_desk.look(exchange_sandbox, "OpenOrders")["open"]

    # Ticks stop (every streams process gone): Kraken cancels once the timeout has passed.
    exchange_sandbox.advance(130)
    exchange_sandbox.advance(1)
    assert trading_desk.look(exchange_sandbox, "OpenOrders")["open"] == {}

    streams.dead_mans_switch_disarm(membership=trader, account=trading_desk.account)
    assert not DeadMansSwitch.objects.get(account=trading_desk.account).armed


def test_a_balance_change_reaches_the_desk_of_the_organizations_members_only(
    trading_desk: TradingDesk, trader: Membership, outsider: Membership
) -> None:
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.db import database_sync_to_async
    from channels.layers import get_channel_layer

    from apps.core.groups import member_group
    from apps.exchange.models import AccountBalance
    from apps.exchange.streams.hooks import balance_hooks_on_commit

    def record() -> None:
        with transaction.atomic():
            row = AccountBalance.objects.create(
                account=trading_desk.account,
                asset="USD",
                wallet_type="spot",
                wallet_id="main",
                balance=Decimal("1234.5"),
                hold=Decimal("10"),
                source="stream",
                updated_at=timezone.now(),
            )
            balance_hooks_on_commit(row)

    async def scenario() -> tuple[dict[str, str], bool]:
        layer: Any = get_channel_layer()
        ours = await layer.new_channel()
        theirs = await layer.new_channel()
        await layer.group_add(member_group(trader.org_id, trader.user_id), ours)
        await layer.group_add(member_group(outsider.org_id, outsider.user_id), theirs)
        await database_sync_to_async(record)()
        message = await asyncio.wait_for(layer.receive(ours), timeout=10)
        try:
            await asyncio.wait_for(layer.receive(theirs), timeout=0.5)
        except TimeoutError:
            leaked = False
        else:
            leaked = True
        return dict(message["parts"]), leaked

    parts, leaked = async_to_sync(scenario)()

    html = parts[f"desk-balances-{trading_desk.account.pk}"]
    assert 'data-asset="USD"' in html
    assert "1224.5" in html  # spendable: the balance less what open orders hold
    assert not leaked
