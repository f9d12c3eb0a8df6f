"""Kraken's own status through the feeder: the system status (pushed on connect and on change)
and each pair's (the `instrument` channel), stored for other apps and sent once to pages."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.template import Context, Template
from django.test import Client
from redis.asyncio import Redis

from apps.core.groups import symbol_group
from apps.market import selectors
from apps.market.feeder.client import Feeder
from apps.market.feeder.publisher import EXCHANGE_ELEMENT
from apps.market.store import EXCHANGE_FRAGMENTS_KEY, OVERVIEW_CHANNEL, loads, state_key
from apps.orgs.models import Membership
from kraken_portal.asgi import application
from tests.market.conftest import eventually, make_feeder
from tests.market.test_consumers import _headers

pytestmark = pytest.mark.timeout(90)


class Listener:
    """A channel in a market group, keeping every part the group was sent."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.layer: Any = get_channel_layer()
        self.parts: list[tuple[str, str]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listener:
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            self.parts.extend((element, html) for element, html in message.get("parts") or [])

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.layer.group_discard(self.group, self.channel)

    def sent(self, element: str) -> list[str]:
        return [html for name, html in self.parts if name == element]


def _subscribed(feeder: Feeder) -> bool:
    return feeder.subscribed.is_set() and feeder.exchange.pairs.get("ETH/USD") == "online"


async def test_it_stores_the_system_status_kraken_pushes_on_connect(
    running_feeder: Feeder,
) -> None:
    status = await eventually(
        lambda: (s := selectors.system_status()).status == "online" and s.age_seconds is not None
    )
    assert status
    current = selectors.system_status()
    assert current.online
    assert current.since is not None
    assert not current.stale


async def test_maintenance_is_stored_and_sent_once_to_every_market_group(
    sandbox: Any, running_feeder: Feeder, aredis: Redis
) -> None:
    await eventually(lambda: _subscribed(running_feeder))
    async with Listener(OVERVIEW_CHANNEL) as overview, Listener(symbol_group("BTC/USD")) as pair:
        sandbox.set_status("maintenance")
        try:
            await eventually(lambda: selectors.system_status().status == "maintenance")
            await eventually(
                lambda: overview.sent(EXCHANGE_ELEMENT) and pair.sent(EXCHANGE_ELEMENT)
            )
            banner = overview.sent(EXCHANGE_ELEMENT)[0]
            assert 'data-system="maintenance"' in banner
            assert "Kraken: Maintenance." in banner
            assert "hidden" not in banner
            stored = await aredis.hget(EXCHANGE_FRAGMENTS_KEY, EXCHANGE_ELEMENT)
            assert stored is not None  # for sockets that join later
            assert stored.decode() == banner

            # Kraken repeats the status on every connect: a repeat is not news for pages.
            frame = {"channel": "status", "type": "update", "data": [{"system": "maintenance"}]}
            await running_feeder.handle(json.dumps(frame), running_feeder.heard_at)
            await asyncio.sleep(0.5)
            assert len(overview.sent(EXCHANGE_ELEMENT)) == 1
            assert len(pair.sent(EXCHANGE_ELEMENT)) == 1
        finally:
            sandbox.set_status("online")
        await eventually(lambda: len(overview.sent(EXCHANGE_ELEMENT)) == 2)
        assert "hidden" in overview.sent(EXCHANGE_ELEMENT)[1]  # back online: no banner
    assert selectors.system_status().online


async def test_a_pairs_status_reaches_the_selector_its_tile_and_its_page(
    sandbox: Any, running_feeder: Feeder, aredis: Redis
) -> None:
    await eventually(lambda: _subscribed(running_feeder))
    # Every pair Kraken lists is stored, also those no page shows (a ticket may trade any).
    assert selectors.pair_status("SOL/USD").status == "online"
    async with Listener(OVERVIEW_CHANNEL) as overview, Listener(symbol_group("ETH/USD")) as pair:
        sandbox.set_pair_status("ETH/USD", "limit_only")
        try:
            await eventually(lambda: selectors.pair_status("ETH/USD").status == "limit_only")
            assert not selectors.pair_status("ETH/USD").stale
            assert selectors.pair_status("BTC/USD").status == "online"
            assert selectors.pair_status("XETHZUSD").status == "limit_only"  # REST spelling
            assert selectors.pair_status("NOT A PAIR").status is None
            await eventually(lambda: any("Limit only" in h for h in pair.sent("status-ETH-USD")))
            await eventually(lambda: any("Limit only" in h for h in overview.sent("tile-ETH-USD")))
            assert not any("Limit only" in h for h in overview.sent("tile-BTC-USD"))
            state = await eventually(lambda: _stored_status(aredis, "ETH/USD", "limit_only"))
            assert state
        finally:
            sandbox.set_pair_status("ETH/USD", "online")
        await eventually(lambda: selectors.pair_status("ETH/USD").status == "online")
        await eventually(
            lambda: 'data-pair-status="online"' in (pair.sent("status-ETH-USD") or [""])[-1]
        )


async def _stored_status(aredis: Redis, symbol: str, status: str) -> bool:
    raw = await aredis.get(state_key(symbol))
    return bool(raw) and loads(raw).get("status") == status


async def test_a_status_grows_old_when_the_feed_stops(
    sandbox: Any, aredis: Redis, settings: Any
) -> None:
    settings.MARKET_STALE_AFTER = 1.0
    feeder = make_feeder(sandbox, aredis)
    task = asyncio.create_task(feeder.run_forever())
    try:
        await eventually(lambda: _subscribed(feeder))
        await eventually(lambda: selectors.system_status().online)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # Nothing confirms the last status any more: it ages until callers must not trust it.
    await eventually(lambda: selectors.system_status().stale)
    assert selectors.system_status().status == "online"
    assert not selectors.system_status().online
    await eventually(lambda: selectors.pair_status("BTC/USD").stale)


async def _banner_stored() -> bool:
    client = Redis.from_url(django_settings.REDIS_URL)
    try:
        html = await client.hget(EXCHANGE_FRAGMENTS_KEY, EXCHANGE_ELEMENT)
    finally:
        await client.aclose()
    return html is not None and b'data-system="maintenance"' in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("socket_db_connections")
async def test_a_socket_opened_during_maintenance_gets_the_banner_at_once(
    sandbox: Any,
    running_feeder: Feeder,
    client_for: Callable[[Membership], Client],
    viewer: Membership,
) -> None:
    await eventually(lambda: _subscribed(running_feeder))
    client = await database_sync_to_async(client_for)(viewer)
    sandbox.set_status("maintenance")
    try:
        await eventually(lambda: selectors.system_status().status == "maintenance")
        await eventually(_banner_stored)  # stored right after the status
        for path in ("/ws/o/acme/markets/", "/ws/o/acme/markets/BTC-USD/"):
            communicator = WebsocketCommunicator(application, path, headers=_headers(client))
            connected, _ = await communicator.connect(timeout=5)
            assert connected
            # The snapshot, with the banner, is among the first frames (a live tile of the
            # running feeder may come just before it).
            snapshot = ""
            for _ in range(5):
                snapshot = await communicator.receive_from(timeout=5)
                if 'id="exchange-status"' in snapshot:
                    break
            assert 'id="exchange-status"' in snapshot
            assert 'data-system="maintenance"' in snapshot
            if path.endswith("BTC-USD/"):
                assert 'id="status-BTC-USD"' in snapshot  # the pair's own status element
            await communicator.disconnect()
        # Any page can show the same banner (the desk, for one) through the template tag.
        html = Template("{% load market_status %}{% exchange_status_banner %}").render(Context())
        assert "Kraken: Maintenance." in html
    finally:
        sandbox.set_status("online")
    await eventually(lambda: selectors.system_status().online)
    html = Template("{% load market_status %}{% exchange_status_banner %}").render(Context())
    assert 'id="exchange-status"' in html
    assert " hidden" in html
