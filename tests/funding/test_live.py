"""The treasury, live on a member's open page (the header socket, through real Redis):
balances read from Kraken arrive as the account's card and the new total."""

from __future__ import annotations

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings

from apps.exchange.services import balances_refresh
from apps.exchange.streams.hooks import stream_hook_register
from apps.funding.kinds import on_balance, on_ledger
from apps.notifications.routing import websocket_urlpatterns
from apps.orgs.models import Membership
from tests.conftest import verified_client
from tests.funding.conftest import Treasury
from tests.sockets import session_key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections", "eager_tasks"),
]

application = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))


async def test_balances_read_from_kraken_reach_a_viewers_open_page(
    treasury: Treasury, viewer: Membership
) -> None:
    stream_hook_register(on_balance=on_balance, on_ledger=on_ledger)
    client = await database_sync_to_async(verified_client)(viewer.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key(client)}"
    socket = WebsocketCommunicator(
        application, f"/ws/o/{viewer.org.slug}/live/", headers=[(b"cookie", cookie.encode())]
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    await socket.receive_from(timeout=5)  # the snapshot of the header's parts

    await database_sync_to_async(balances_refresh)(account=treasury.master)

    frame = ""
    while f'id="balances-account-{treasury.master.pk}"' not in frame:
        frame = await socket.receive_from(timeout=10)
    assert 'hx-swap-oob="true"' in frame
    assert 'data-asset="BTC"' in frame
    assert 'id="treasury-total"' in frame
    assert 'data-total-value="785000' in frame
    await socket.disconnect()
