"""Market sockets: only signed-in members from our own origin; snapshot then live fragments."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.market.consumers import MarketConsumer
from apps.market.feeder.client import Feeder
from apps.orgs.models import Membership
from kraken_portal.asgi import application
from tests.market.conftest import eventually

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections"),
    pytest.mark.timeout(60),
]

ORIGIN = (b"origin", b"http://127.0.0.1")


def _headers(client: Client | None, origin: tuple[bytes, bytes] = ORIGIN) -> list[Any]:
    headers = [origin, (b"host", b"127.0.0.1")]
    if client is not None:
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        headers.append((b"cookie", cookie.encode()))
    return headers


async def _connect(path: str, headers: list[Any]) -> tuple[WebsocketCommunicator, bool, Any]:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def test_an_anonymous_socket_is_refused(org: Any) -> None:
    communicator, connected, code = await _connect("/ws/o/acme/markets/", _headers(None))
    assert not connected
    assert code == 4403
    await communicator.disconnect()


async def test_a_cross_origin_socket_is_refused(
    client_for: Callable[[Membership], Client], viewer: Membership
) -> None:
    client = await database_sync_to_async(client_for)(viewer)
    headers = _headers(client, origin=(b"origin", b"https://evil.example"))
    communicator, connected, _ = await _connect("/ws/o/acme/markets/", headers)
    assert not connected
    await communicator.disconnect()


async def test_a_member_of_another_organization_is_refused(
    client_for: Callable[[Membership], Client], outsider: Membership, org: Any
) -> None:
    client = await database_sync_to_async(client_for)(outsider)
    communicator, connected, _ = await _connect("/ws/o/acme/markets/", _headers(client))
    # Accepted only to be closed with 4403 at once, so the page stops retrying and says why;
    # not one market fragment is sent first.
    assert connected
    message = await communicator.receive_output(timeout=5)
    assert (message["type"], message.get("code")) == ("websocket.close", 4403)
    await communicator.disconnect()


async def test_a_member_gets_the_tiles_at_once_then_live_updates(
    client_for: Callable[[Membership], Client], viewer: Membership, running_feeder: Feeder
) -> None:
    await eventually(lambda: all(st.book.ready for st in running_feeder.states.values()))
    await asyncio.sleep(0.5)  # the first flush has stored fragments
    client = await database_sync_to_async(client_for)(viewer)
    communicator, connected, _ = await _connect("/ws/o/acme/markets/", _headers(client))
    assert connected
    snapshot = await communicator.receive_from(timeout=5)
    assert 'id="tile-BTC-USD"' in snapshot
    assert 'id="tile-ETH-USD"' in snapshot
    live = await communicator.receive_from(timeout=10)
    assert 'hx-swap-oob="true"' in live
    assert "data-t=" in live  # the feeder's receive time, for latency measurement
    await communicator.disconnect()


async def test_a_pair_socket_gets_the_book_trades_stats_and_candle(
    client_for: Callable[[Membership], Client], viewer: Membership, running_feeder: Feeder
) -> None:
    await eventually(lambda: all(st.book.ready for st in running_feeder.states.values()))
    await asyncio.sleep(0.5)
    client = await database_sync_to_async(client_for)(viewer)
    communicator, connected, _ = await _connect("/ws/o/acme/markets/BTC-USD/", _headers(client))
    assert connected
    snapshot = await communicator.receive_from(timeout=5)
    for element in ("ladder-BTC-USD", "trades-BTC-USD", "stats-BTC-USD", "candle-BTC-USD"):
        assert f'id="{element}"' in snapshot
    assert "ETH-USD" not in snapshot
    await communicator.disconnect()


async def test_an_unknown_pair_socket_is_closed(
    client_for: Callable[[Membership], Client], viewer: Membership, running_feeder: Feeder
) -> None:
    await eventually(lambda: len(running_feeder.states) == 2)
    client = await database_sync_to_async(client_for)(viewer)
    communicator, _, _ = await _connect("/ws/o/acme/markets/NOPE-USD/", _headers(client))
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    await communicator.disconnect()


class _Unsent(MarketConsumer):
    """A consumer whose network side never drains: what a stalled client looks like to it."""

    def __init__(self) -> None:
        super().__init__()
        self.closed_with: int | None = None

    async def close(self, code: Any = None, reason: Any = None) -> None:
        self.closed_with = code


async def test_a_slow_client_keeps_only_the_newest_html_per_element() -> None:
    consumer = _Unsent()
    await consumer.fragments({"type": "fragments", "parts": [["tile-BTC-USD", "old"]]})
    await consumer.fragments({"type": "fragments", "parts": [["tile-BTC-USD", "new"]]})
    assert consumer._pending == {"tile-BTC-USD": "new"}
    assert consumer.closed_with is None


async def test_a_client_too_far_behind_is_closed_so_it_reconnects() -> None:
    consumer = _Unsent()
    parts = [[f"order-{n}", "<div></div>"] for n in range(500)]
    await consumer.fragments({"type": "fragments", "parts": parts})
    await asyncio.sleep(0)  # the close runs as its own task
    assert consumer.closed_with == 1013  # htmx's ws extension reconnects on 1013


async def _received_frames(communicator: WebsocketCommunicator, wanted: set[str]) -> list[set[str]]:
    """Each received frame's element ids, in order, until all of `wanted` arrived (at most 20
    frames)."""
    import re

    frames: list[set[str]] = []
    for _ in range(20):
        frame = await communicator.receive_from(timeout=10)
        frames.append(set(re.findall(r'id="((?:tile|row)-[A-Z-]+)"', frame)))
        if wanted <= set().union(*frames):
            break
    return frames


async def _received_ids(communicator: WebsocketCommunicator, wanted: set[str]) -> set[str]:
    """Element ids of the fragments received until all of `wanted` arrived (at most 20 frames;
    the running feeder keeps them coming, and a receive that times out ends the consumer)."""
    import re

    seen: set[str] = set()
    for _ in range(20):
        frame = await communicator.receive_from(timeout=10)
        seen.update(re.findall(r'id="((?:tile|row)-[A-Z-]+)"', frame))
        if wanted <= seen:
            break
    return seen


async def test_an_overview_socket_sends_only_the_view_the_page_shows(
    client_for: Callable[[Membership], Client], viewer: Membership, running_feeder: Feeder
) -> None:
    await eventually(lambda: all(st.book.ready for st in running_feeder.states.values()))
    await asyncio.sleep(0.5)
    client = await database_sync_to_async(client_for)(viewer)
    communicator, connected, _ = await _connect("/ws/o/acme/markets/?view=table", _headers(client))
    assert connected
    rows = {"row-BTC-USD", "row-ETH-USD"}
    seen = await _received_ids(communicator, rows)
    assert rows <= seen  # the snapshot and live rows...
    assert not any(element.startswith("tile-") for element in seen)  # ...and no tiles

    await communicator.send_to(text_data='{"view": "tiles"}')
    tiles = {"tile-BTC-USD", "tile-ETH-USD"}
    # Rows already on the wire when the switch arrived may still come before it takes effect;
    # from the tiles' snapshot on, no row.
    frames = await _received_frames(communicator, tiles)
    switched = next(i for i, ids in enumerate(frames) if any(e.startswith("tile-") for e in ids))
    assert tiles <= set().union(*frames[switched:])  # the tiles' snapshot at once
    assert not any(e.startswith("row-") for ids in frames[switched:] for e in ids)

    await communicator.send_to(text_data='{"view": "nonsense", "x": 1}')  # ignored
    await communicator.send_to(text_data="not json")
    seen = await _received_ids(communicator, {"tile-BTC-USD"})
    assert "tile-BTC-USD" in seen
    assert not any(element.startswith("row-") for element in seen)
    await communicator.disconnect()
