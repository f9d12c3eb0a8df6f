"""The feeder against the Kraken sandbox: state, reconnection, checksum recovery, the lease."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from decimal import Decimal
from typing import Any

import pytest
from channels.layers import get_channel_layer
from redis.asyncio import Redis

from apps.market.feeder.client import Feeder
from apps.market.feeder.publisher import FEED_ELEMENT
from apps.market.store import (
    FEEDER_KEY,
    LEASE_KEY,
    OVERVIEW_CHANNEL,
    PAIRS_KEY,
    fragments_key,
    loads,
    state_key,
)
from tests.market.conftest import eventually, make_feeder

pytestmark = pytest.mark.timeout(90)


def _book_ready(feeder: Feeder, symbol: str = "BTC/USD") -> bool:
    st = feeder.states.get(symbol)
    return bool(st and st.book.ready and st.book.bids and st.book.asks)


async def test_it_publishes_each_pairs_state_and_fragments_to_redis(
    running_feeder: Feeder, aredis: Redis
) -> None:
    await eventually(lambda: _book_ready(running_feeder))
    pairs = await eventually(lambda: aredis.get(PAIRS_KEY))
    assert [p["symbol"] for p in loads(pairs)] == ["BTC/USD", "ETH/USD"]
    raw = await eventually(lambda: aredis.get(state_key("BTC/USD")))
    state = loads(raw)
    assert Decimal(state["ticker"]["bid"]) < Decimal(state["ticker"]["ask"])
    tile = await eventually(lambda: aredis.hget(fragments_key("BTC/USD"), "tile-BTC-USD"))
    assert b'id="tile-BTC-USD"' in tile
    assert b'hx-swap-oob="true"' in tile
    assert running_feeder.resyncs == 0  # every sandbox checksum verified


async def test_after_the_exchange_drops_the_socket_it_resubscribes_and_recovers(
    sandbox: Any, running_feeder: Feeder, aredis: Redis
) -> None:
    await eventually(lambda: _book_ready(running_feeder))
    sandbox.set_faults(ws_disconnect_every=1)
    try:
        await eventually(lambda: running_feeder.reconnects >= 1)
    finally:
        sandbox.clear_faults()
    before = running_feeder.reconnects
    await eventually(lambda: running_feeder.subscribed.is_set() and _book_ready(running_feeder))
    st = running_feeder.states["BTC/USD"]
    seen = st.received_at
    await eventually(lambda: st.received_at > seen)  # new messages arrive on the new socket
    assert st.book.checksum() is not None
    assert running_feeder.reconnects >= before
    # The status page's record (written every second) counts the reconnect.
    await eventually(
        lambda: _reconnects_recorded(aredis),
    )


async def _reconnects_recorded(aredis: Redis) -> bool:
    status = await aredis.hgetall(FEEDER_KEY)
    return int(status.get(b"reconnects", 0)) >= 1


async def test_a_corrupted_book_is_dropped_and_rebuilt_by_resubscribing(
    running_feeder: Feeder,
) -> None:
    await eventually(lambda: _book_ready(running_feeder))
    st = running_feeder.states["BTC/USD"]
    best_ask = st.book.asks[0]
    tampered = {
        "channel": "book",
        "type": "update",
        "data": [
            {
                "symbol": "BTC/USD",
                "bids": [],
                "asks": [{"price": str(best_ask[0]), "qty": str(best_ask[1] + 1)}],
                # The exchange's checksum of its real (untampered) book.
                "checksum": st.book.checksum(),
            }
        ],
    }
    await running_feeder.handle(json.dumps(tampered), 0.0)
    assert running_feeder.resyncs == 1
    assert not st.book.ready  # dropped at once
    await eventually(lambda: _book_ready(running_feeder))  # rebuilt from a fresh snapshot
    assert running_feeder.resyncs == 1


async def test_a_standby_feeder_takes_over_the_lease_when_the_active_one_dies(
    sandbox: Any, aredis: Redis
) -> None:
    first = make_feeder(sandbox, aredis)
    second = make_feeder(sandbox, aredis)
    first_task = asyncio.create_task(first.run_forever())
    await eventually(lambda: first.state != "standby")
    second_task = asyncio.create_task(second.run_forever())
    await asyncio.sleep(1.0)
    assert second.state == "standby"  # only one feeder is active
    assert await aredis.get(LEASE_KEY) == first.lease.owner.encode()

    # The active feeder dies without releasing its lease (a crash, not a clean stop).
    first.lease.release = _no_release  # type: ignore[method-assign]
    first_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first_task

    await eventually(lambda: second.state != "standby", within=10)
    assert await aredis.get(LEASE_KEY) == second.lease.owner.encode()
    await eventually(lambda: _book_ready(second))
    second_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await second_task


async def _no_release() -> None:
    return None


async def test_a_tiles_bid_and_ask_follow_the_book_between_trades(
    sandbox: Any, running_feeder: Feeder
) -> None:
    await eventually(lambda: _book_ready(running_feeder))
    st = running_feeder.states["BTC/USD"]
    sandbox.configure(flow_rate=0)  # nobody trades; the book still moves every tick
    try:
        await asyncio.sleep(0.6)  # a trade from the tick before may still be on its way
        newest_trade = st.trades[0] if st.trades else None
        quotes: set[tuple[Decimal, Decimal]] = set()

        def quote_moved() -> bool:
            quotes.add((st.ticker["bid"], st.ticker["ask"]))
            return len(quotes) >= 3

        await eventually(quote_moved)
        # The quotes moved without a trade (the tape is bounded, so compare its newest entry).
        assert (st.trades[0] if st.trades else None) is newest_trade
    finally:
        sandbox.configure(flow_rate=0.6)


async def _next_pulse(layer: Any, channel: str) -> str:
    while True:
        message = await asyncio.wait_for(layer.receive(channel), timeout=10)
        parts = dict(message["parts"])
        if FEED_ELEMENT in parts:
            return str(parts[FEED_ELEMENT])


async def test_every_second_it_tells_pages_when_kraken_was_last_heard_from(
    running_feeder: Feeder,
) -> None:
    started = time.time()
    await eventually(lambda: _book_ready(running_feeder))
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(OVERVIEW_CHANNEL, channel)
    try:
        pulse = await _next_pulse(layer, channel)
        age = re.search(r'data-age-ms="(-?\d+)"', pulse)
        assert age is not None
        # Kraken (the sandbox sends every 250 ms) was heard from moments ago, during this test.
        assert 0 <= int(age.group(1)) < min(5000, (time.time() - started) * 1000)
        assert 'data-down=""' in pulse  # every book is usable

        # A book waiting for its snapshot after a resubscribe is named, so its pages go stale.
        running_feeder.states["BTC/USD"].book.ready = False
        await eventually(lambda: "BTC/USD" in running_feeder.rebuilding())
        for _ in range(5):  # a pulse sent before the flip may still be queued
            pulse = await _next_pulse(layer, channel)
            if 'data-down="BTC-USD"' in pulse:
                break
        assert 'data-down="BTC-USD"' in pulse
    finally:
        await layer.group_discard(OVERVIEW_CHANNEL, channel)
