"""A removal or role change that commits after a socket read the membership but before it
joined the member's group publishes its close to nobody; the socket looks once more after
joining. The test consumer runs the real service at exactly that moment (inside authorise(),
after MemberConsumer's own read), so the service's close is dropped as in the race."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.urls import path

from apps.core.realtime import CLOSE_FORBIDDEN, CLOSE_REAUTHORISE
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services import memberships
from tests.conftest import verified_client
from tests.sockets import ProbeConsumer, close_code, session_key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections"),
]

# What commits between the membership read and the group join (set by each test).
_in_between: list[Callable[[], Any]] = []


class RacedConsumer(ProbeConsumer):
    async def authorise(self, user: Any, session: SessionBase) -> list[str] | None:
        groups = await super().authorise(user, session)
        for change in _in_between:
            await database_sync_to_async(change)()
        return groups


application = AuthMiddlewareStack(
    URLRouter([path("ws/o/<slug:org>/raced/", RacedConsumer.as_asgi())])
)


async def _connect(membership: Membership, change: Callable[[], Any]) -> WebsocketCommunicator:
    client = await database_sync_to_async(verified_client)(membership.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key(client)}"
    socket = WebsocketCommunicator(
        application, f"/ws/o/{membership.org.slug}/raced/", headers=[(b"cookie", cookie.encode())]
    )
    _in_between[:] = [change]
    try:
        connected, _ = await socket.connect(timeout=5)
    finally:
        _in_between.clear()
    assert connected  # accepted, then closed once the second look sees the change
    return socket


async def test_a_removal_between_the_membership_read_and_the_join_closes_the_socket(
    owner: Membership, trader: Membership
) -> None:
    socket = await _connect(
        trader, lambda: memberships.membership_remove(membership=trader, actor=owner)
    )
    assert await close_code(socket, timeout=5) == CLOSE_FORBIDDEN
    await socket.wait()


async def test_a_role_change_between_the_read_and_the_join_asks_to_reauthorise(
    owner: Membership, trader: Membership
) -> None:
    socket = await _connect(
        trader,
        lambda: memberships.membership_change_role(
            membership=trader, role=Role.VIEWER, actor=owner
        ),
    )
    assert await close_code(socket, timeout=5) == CLOSE_REAUTHORISE
    await socket.wait()


async def test_nothing_in_between_leaves_the_socket_open(trader: Membership) -> None:
    socket = await _connect(trader, lambda: None)
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()
