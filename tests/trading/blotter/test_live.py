"""The desk live: when exchange records a fill or an order (the private streams' hooks, through
real Redis), each member's open socket in the organization receives the desk's refresh parts;
a member of another organization receives nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings

from apps.exchange.streams import hooks as stream_hooks
from apps.exchange.streams.hooks import fill_hooks_on_commit
from apps.notifications.routing import websocket_urlpatterns
from apps.orgs.models import Membership
from apps.trading import live_blotter
from tests.conftest import verified_client
from tests.factories import master_account
from tests.sockets import session_key
from tests.trading.blotter.conftest import DeskData, at

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections", "desk_stream_hooks"),
]


@pytest.fixture
def desk_stream_hooks() -> Iterator[None]:
    """The trading app's stream hooks, as its ready() registers them (another module's tests
    may have cleared the registry); the registry is put back as it was afterwards."""
    saved = list(stream_hooks._hooks)
    stream_hooks._hooks.clear()
    stream_hooks.stream_hook_register(
        on_order=live_blotter._order_changed, on_fill=live_blotter._fill_recorded
    )
    yield
    stream_hooks._hooks[:] = saved


application = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))


async def live_socket(membership: Membership) -> WebsocketCommunicator:
    client = await database_sync_to_async(verified_client)(membership.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key(client)}"
    socket = WebsocketCommunicator(
        application, f"/ws/o/{membership.org.slug}/live/", headers=[(b"cookie", cookie.encode())]
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    return socket


async def frames_until(socket: WebsocketCommunicator, needle: str, timeout: float) -> str:
    """Every frame's text until one contains `needle` or the time is up. Never lets a receive
    time out (the communicator cancels the consumer when one does): it waits with
    receive_nothing and reads only what is there."""
    seen = ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while needle not in seen and loop.time() < deadline:
        if not await socket.receive_nothing(timeout=0.1, interval=0.02):
            seen += await socket.receive_from()
    return seen


async def test_a_recorded_fill_refreshes_every_members_desk_and_no_one_elses(
    desk: DeskData, trader: Membership, viewer: Membership, outsider: Membership
) -> None:
    fill = await database_sync_to_async(
        lambda: desk.fill(
            desk.order(by=None, status="closed", opened_at=at(0)), qty="1", price="5", at=at(1)
        )
    )()
    await database_sync_to_async(master_account)(outsider.org)
    viewer_socket = await live_socket(viewer)
    outsider_socket = await live_socket(outsider)
    await frames_until(viewer_socket, "never", 0.5)  # the sockets' own snapshots
    await frames_until(outsider_socket, "never", 0.5)

    # What exchange's streams do once they have recorded the fill (no transaction: at once).
    await database_sync_to_async(fill_hooks_on_commit)(fill, placed_by_portal=False)

    seen = await frames_until(viewer_socket, "blotter-live-fills", 5)
    assert 'id="blotter-live-fills"' in seen
    assert 'hx-get="/o/acme/desk/blotter/fills/"' in seen
    assert 'id="desk-panel-live"' in seen
    assert "blotter-live" not in await frames_until(outsider_socket, "blotter-live", 1)
    await viewer_socket.disconnect()
    await outsider_socket.disconnect()
