"""The header socket: a member of the URL's organization, with a snapshot on connect."""

from __future__ import annotations

import json

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings

from apps.notifications.services import notify
from kraken_portal.routing import websocket_urlpatterns
from tests.conftest import verified_client
from tests.notifications.conftest import KIND
from tests.sockets import session_key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections"),
]

application = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))


async def live_socket(membership, org_slug: str = "acme") -> WebsocketCommunicator:
    client = await database_sync_to_async(verified_client)(membership.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key(client)}"
    return WebsocketCommunicator(
        application, f"/ws/o/{org_slug}/live/", headers=[(b"cookie", cookie.encode())]
    )


async def test_the_snapshot_carries_the_unread_count_and_the_role(viewer) -> None:
    await database_sync_to_async(notify)(
        org=viewer.org, user_ids=[viewer.user_id], kind=KIND, title="Hi"
    )
    socket = await live_socket(viewer)
    connected, _ = await socket.connect()
    assert connected

    frame = await socket.receive_from(timeout=5)

    assert 'id="notification-badge"' in frame
    assert 'data-unread="1"' in frame
    assert 'data-role="viewer"' in frame
    assert 'id="approvals-count"' in frame
    await socket.disconnect()


async def test_a_later_notification_arrives_live(viewer) -> None:
    socket = await live_socket(viewer)
    await socket.connect()
    await socket.receive_from(timeout=5)  # the snapshot

    await database_sync_to_async(notify)(
        org=viewer.org, user_ids=[viewer.user_id], kind=KIND, title="Live"
    )

    frame = await socket.receive_from(timeout=5)
    assert 'data-unread="1"' in frame
    await socket.disconnect()


async def test_an_outsider_is_refused(outsider, org) -> None:
    socket = await live_socket(outsider, org_slug="acme")
    connected, _ = await socket.connect()
    if connected:
        output = await socket.receive_output(timeout=5)
        assert output["type"] == "websocket.close"
        assert output.get("code") == 4403, json.dumps(output)


async def test_the_badge_reaches_only_this_organizations_socket(viewer, owner, outsider) -> None:
    """The same person in two organizations, and a colleague: only the addressed member's
    socket in the organization that raised it hears the change."""
    from tests.factories import MembershipFactory

    elsewhere = await database_sync_to_async(MembershipFactory)(org=outsider.org, user=viewer.user)
    here, there, colleague = (
        await live_socket(viewer),
        await live_socket(elsewhere, org_slug="other"),
        await live_socket(owner),
    )
    for socket in (here, there, colleague):
        connected, _ = await socket.connect()
        assert connected
        await socket.receive_from(timeout=5)  # the snapshot

    await database_sync_to_async(notify)(
        org=viewer.org, user_ids=[viewer.user_id], kind=KIND, title="Only here"
    )

    assert 'data-unread="1"' in await here.receive_from(timeout=5)
    assert await there.receive_nothing(timeout=0.5)
    assert await colleague.receive_nothing(timeout=0.2)
    for socket in (here, there, colleague):
        await socket.disconnect()
