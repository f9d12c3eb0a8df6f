"""Removing a member or changing their role closes their open sockets, through real Redis."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apps.core.realtime import CLOSE_FORBIDDEN, CLOSE_REAUTHORISE
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services import memberships
from tests.conftest import verified_client
from tests.sockets import close_code, open_probe, probe

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections"),
]


async def connect_as(membership: Membership) -> WebsocketCommunicator:
    client = await database_sync_to_async(verified_client)(membership.user)
    return await open_probe(membership, client)


async def closed_with(communicator: WebsocketCommunicator) -> Any:
    return await close_code(communicator, timeout=5)


async def test_removing_a_member_closes_their_open_socket(
    owner: Membership, trader: Membership
) -> None:
    socket = await connect_as(trader)
    assert await socket.receive_nothing(timeout=0.1)

    await database_sync_to_async(memberships.membership_remove)(membership=trader, actor=owner)

    assert await closed_with(socket) == CLOSE_FORBIDDEN
    await socket.wait()


async def test_changing_a_members_role_closes_their_open_socket(
    owner: Membership, trader: Membership, viewer: Membership
) -> None:
    trader_socket = await connect_as(trader)
    viewer_socket = await connect_as(viewer)

    await database_sync_to_async(memberships.membership_change_role)(
        membership=trader, role=Role.VIEWER, actor=owner
    )

    # The page reconnects (htmx does so after 1012) and is authorised for the new role.
    assert await closed_with(trader_socket) == CLOSE_REAUTHORISE
    # Other members' sockets stay open.
    assert await viewer_socket.receive_nothing(timeout=0.3)
    await viewer_socket.disconnect()
    await trader_socket.wait()
    # Reconnecting works: a viewer may still watch (connect_as asserts the handshake).
    again = await connect_as(trader)
    await again.disconnect()


async def test_a_removed_member_cannot_open_a_socket_again(
    owner: Membership, trader: Membership
) -> None:
    client = await database_sync_to_async(verified_client)(trader.user)
    socket = await open_probe(trader, client)

    await database_sync_to_async(memberships.membership_remove)(membership=trader, actor=owner)

    assert await closed_with(socket) == CLOSE_FORBIDDEN
    await socket.wait()
    # The membership row is kept (removed), yet the member is an outsider to the socket too.
    again = probe(trader, client)
    connected, code = await again.connect(timeout=5)
    if connected:
        code = await closed_with(again)
    assert code == CLOSE_FORBIDDEN
    await again.disconnect()
