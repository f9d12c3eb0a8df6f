"""The Operations page's socket: an owner's open page receives an operation's card when it
changes state (through real Redis); a role without the capability cannot open the socket."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.utils import timezone

from apps.core.realtime import CLOSE_FORBIDDEN
from apps.exchange import services
from apps.exchange.models import Kind, Operation, State
from apps.exchange.routing import websocket_urlpatterns
from apps.orgs.models import Membership
from tests.conftest import verified_client
from tests.exchange.conftest import Desk
from tests.sockets import close_code, session_key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections"),
]

application = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))


async def operations_socket(membership: Membership) -> WebsocketCommunicator:
    client = await database_sync_to_async(verified_client)(membership.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key(client)}"
    socket = WebsocketCommunicator(
        application,
        f"/ws/o/{membership.org.slug}/operations/",
        headers=[(b"cookie", cookie.encode())],
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    return socket


def stale_sending_order(desk: Desk, owner: Membership) -> Operation:
    """An order whose worker died mid-send long ago (it never reached the sandbox)."""
    return Operation.objects.create(
        org=owner.org,
        account=desk.credential.account,
        credential=desk.credential,
        kind=Kind.ADD_ORDER,
        params={"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.01"},
        reference={"cl_ord_id": "da8e4ad59b78481c93e589746b0cf91f"},
        state=State.SENDING,
        sent_at=timezone.now() - timedelta(hours=1),
        requested_by=owner.user,
    )


async def test_an_owners_open_page_receives_the_card_when_an_operation_changes(
    desk: Desk, owner: Membership, exchange_sandbox: Any
) -> None:
    operation = await database_sync_to_async(stale_sending_order)(desk, owner)
    socket = await operations_socket(owner)

    await database_sync_to_async(services.operation_reconcile)(operation_id=operation.pk)

    frame = await socket.receive_from(timeout=10)
    assert f'id="operation-{operation.pk}"' in frame
    assert 'hx-swap-oob="true"' in frame
    assert 'data-state="unknown"' in frame
    assert "The worker stopped while sending" in frame
    await socket.disconnect()


async def test_a_trader_cannot_open_the_operations_socket(trader: Membership) -> None:
    client = await database_sync_to_async(verified_client)(trader.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key(client)}"
    socket = WebsocketCommunicator(
        application, f"/ws/o/{trader.org.slug}/operations/", headers=[(b"cookie", cookie.encode())]
    )
    await socket.connect(timeout=5)
    assert await close_code(socket, timeout=5) == CLOSE_FORBIDDEN
