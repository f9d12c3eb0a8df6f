"""Sockets follow the same rules as pages: 2FA whenever the user has a confirmed device,
the organization's new 2FA requirement closes sockets that no longer qualify, and private
events reach a member's sockets in one organization only (never the cross-organization user
group). Real Channels communicators over the real Redis channel layer."""

from __future__ import annotations

from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.urls import path

from apps.accounts.services import totp_device_create
from apps.core.groups import session_group, user_group
from apps.core.realtime import (
    CLOSE_FORBIDDEN,
    CLOSE_SIGNED_OUT,
    PrivateDataToSharedGroup,
    member_event_on_commit,
    publish_on_commit,
)
from apps.orgs.consumers import MemberConsumer
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services.organizations import organization_update_settings
from tests.conftest import verified_client
from tests.factories import MembershipFactory, OrganizationFactory
from tests.sockets import close_code, session_key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections"),
]


class FragmentsProbe(MemberConsumer):
    """A member socket that shows the private events it receives, as live pages do."""

    async def fragments(self, event: dict[str, Any]) -> None:
        await self.send(text_data="".join(html for _, html in event["parts"]))


application = AuthMiddlewareStack(
    URLRouter([path("ws/o/<slug:org>/fragments/", FragmentsProbe.as_asgi())])
)


def _socket(org_slug: str, client: Client) -> WebsocketCommunicator:
    cookie = f"{settings.SESSION_COOKIE_NAME}={session_key(client)}"
    return WebsocketCommunicator(
        application, f"/ws/o/{org_slug}/fragments/", headers=[(b"cookie", cookie.encode())]
    )


async def _open(org_slug: str, client: Client) -> WebsocketCommunicator:
    socket = _socket(org_slug, client)
    connected, _ = await socket.connect(timeout=5)
    assert connected
    assert await socket.receive_nothing(timeout=0.3), "the socket was refused"
    return socket


async def _refused_with(org_slug: str, client: Client) -> Any:
    socket = _socket(org_slug, client)
    connected, code = await socket.connect(timeout=5)
    if connected:  # accepted only to be closed with the reason
        code = await close_code(socket, timeout=5)
    await socket.disconnect()
    return code


@database_sync_to_async
def _plain_client(membership: Membership) -> Client:
    """Signed in with a password only: no second factor verified in this session."""
    client = Client()
    client.force_login(membership.user)
    return client


@database_sync_to_async
def _org_without_2fa_requirement(membership: Membership) -> None:
    membership.org.require_2fa = False
    membership.org.save(update_fields=["require_2fa"])


@database_sync_to_async
def _give_device(membership: Membership) -> None:
    totp_device_create(user=membership.user, confirmed=True)


async def test_a_user_with_a_device_must_have_verified_it_even_where_2fa_is_optional(
    trader: Membership,
) -> None:
    await _org_without_2fa_requirement(trader)
    await _give_device(trader)
    client = await _plain_client(trader)

    # A page would send this session to the 2FA verification first; so does the socket.
    assert await _refused_with("acme", client) == CLOSE_FORBIDDEN


async def test_a_user_without_a_device_connects_where_2fa_is_optional(trader: Membership) -> None:
    await _org_without_2fa_requirement(trader)
    client = await _plain_client(trader)

    socket = await _open("acme", client)
    await socket.disconnect()


async def test_turning_on_the_2fa_requirement_closes_only_sockets_that_no_longer_qualify(
    owner: Membership, trader: Membership, viewer: Membership
) -> None:
    await _org_without_2fa_requirement(owner)
    unverified = await _open("acme", await _plain_client(trader))
    verified = await _open("acme", await database_sync_to_async(verified_client)(viewer.user))

    await database_sync_to_async(organization_update_settings)(
        org=owner.org, actor=owner, name=owner.org.name, require_2fa=True
    )

    assert await close_code(unverified, timeout=5) == CLOSE_FORBIDDEN
    assert await verified.receive_nothing(timeout=0.5)
    await verified.disconnect()
    await unverified.wait()


async def test_private_events_reach_the_members_sockets_in_that_organization_only(
    trader: Membership,
) -> None:
    other = await database_sync_to_async(OrganizationFactory)(name="Other Fund", slug="other")
    await database_sync_to_async(MembershipFactory)(org=other, user=trader.user, role=Role.TRADER)
    client = await database_sync_to_async(verified_client)(trader.user)
    in_acme = await _open("acme", client)
    in_other = await _open("other", client)

    @database_sync_to_async
    def publish() -> None:
        with transaction.atomic():
            member_event_on_commit(
                org_id=trader.org_id, user_ids=[trader.user_id], parts=[("fills", "<p>fill</p>")]
            )

    await publish()

    assert await in_acme.receive_from(timeout=5) == "<p>fill</p>"
    assert await in_other.receive_nothing(timeout=0.5)
    await in_acme.disconnect()
    await in_other.disconnect()


def test_data_for_the_cross_organization_groups_is_refused_before_anything_is_sent() -> None:
    fragments = {"type": "fragments", "parts": [("balances", "<p>1 BTC</p>")]}
    for group in (user_group(1), session_group("a-session-key")):
        with pytest.raises(PrivateDataToSharedGroup):
            publish_on_commit(group, fragments)
    # Closing sockets is what those groups are for.
    publish_on_commit(user_group(1), {"type": "session.close", "code": CLOSE_SIGNED_OUT})
