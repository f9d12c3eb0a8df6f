"""Driving member sockets in tests without a server: the smallest member consumer, and helpers
around channels' WebsocketCommunicator. Use with the `socket_db_connections` fixture."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.urls import path

from apps.orgs.consumers import MemberConsumer
from apps.orgs.models import Membership


class ProbeConsumer(MemberConsumer):
    """The smallest member socket: only MemberConsumer's own checks and groups."""


application = AuthMiddlewareStack(
    URLRouter([path("ws/o/<slug:org>/probe/", ProbeConsumer.as_asgi())])
)


def session_key(client: Client) -> str:
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


def probe(membership: Membership, client: Client) -> WebsocketCommunicator:
    """A probe socket in `membership`'s organization with `client`'s session (not connected)."""
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key(client)}"
    return WebsocketCommunicator(
        application, f"/ws/o/{membership.org.slug}/probe/", headers=[(b"cookie", cookie.encode())]
    )


async def open_probe(membership: Membership, client: Client) -> WebsocketCommunicator:
    """A connected probe socket (the handshake is asserted)."""
    socket = probe(membership, client)
    connected, _ = await socket.connect(timeout=5)
    assert connected
    return socket


async def close_code(socket: WebsocketCommunicator, timeout: float = 10) -> Any:
    """The code of the close the server sends next (fails if it sends anything else)."""
    message = await socket.receive_output(timeout=timeout)
    assert message["type"] == "websocket.close"
    return message.get("code")
