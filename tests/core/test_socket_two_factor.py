"""Member sockets apply the same 2FA rule as pages: a verified session needs a live device."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client, RequestFactory
from django.urls import reverse

from apps.accounts.models import EncryptedTOTPDevice
from apps.accounts.services import two_factor_disable
from apps.core.realtime import CLOSE_FORBIDDEN, CLOSE_REAUTHORISE
from apps.orgs.models import Membership
from tests.accounts.otp import totp_code
from tests.conftest import verified_client
from tests.sockets import close_code, open_probe, probe

SETUP = reverse("accounts:two-factor-setup")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections"),
]


@database_sync_to_async
def _require_2fa(membership: Membership) -> None:
    membership.org.require_2fa = True
    membership.org.save(update_fields=["require_2fa"])


async def _connect(membership: Membership, client: Client) -> tuple[bool, int | None]:
    """(stayed open, close code). A refused member is accepted only to be closed at once with
    the reason (a bare refused handshake reads as 1006 in a browser, which retries for ever)."""
    communicator = probe(membership, client)
    connected, code = await communicator.connect(timeout=5)
    # The refusal's close follows the accept at once; a member's probe socket sends nothing.
    if connected and not await communicator.receive_nothing(timeout=1.0):
        message = await communicator.receive_output(timeout=1)
        assert message["type"] == "websocket.close"
        connected, code = False, message.get("code")
    await communicator.disconnect()
    return connected, code


async def test_a_verified_member_connects_when_the_organization_requires_2fa(
    trader: Membership,
) -> None:
    await _require_2fa(trader)
    client = await database_sync_to_async(verified_client)(trader.user)

    connected, _ = await _connect(trader, client)

    assert connected


async def test_a_session_whose_authenticator_was_removed_is_refused(trader: Membership) -> None:
    await _require_2fa(trader)
    client = await database_sync_to_async(verified_client)(trader.user)
    # 2FA disabled from another session: this session still holds the old device's id.
    await database_sync_to_async(EncryptedTOTPDevice.objects.filter(user=trader.user).delete)()

    connected, code = await _connect(trader, client)

    assert not connected
    assert code == CLOSE_FORBIDDEN


async def test_a_session_with_another_users_device_id_is_refused(
    trader: Membership, viewer: Membership
) -> None:
    await _require_2fa(trader)
    client = await database_sync_to_async(verified_client)(trader.user)
    other = await database_sync_to_async(verified_client)(viewer.user)

    @database_sync_to_async
    def borrow_device_id() -> None:
        session = client.session
        session["otp_device_id"] = other.session["otp_device_id"]
        session.save()

    await borrow_device_id()

    connected, code = await _connect(trader, client)

    assert not connected
    assert code == CLOSE_FORBIDDEN


async def test_disabling_2fa_closes_the_users_open_sockets(trader: Membership) -> None:
    await _require_2fa(trader)
    client = await database_sync_to_async(verified_client)(trader.user)
    socket = await open_probe(trader, client)  # asserts the handshake succeeded

    request = RequestFactory().post("/accounts/two-factor/disable/")
    await database_sync_to_async(two_factor_disable)(user=trader.user, request=request)

    message = await socket.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    # Closed so that the page reconnects and is judged afresh...
    assert message.get("code") == CLOSE_REAUTHORISE
    await socket.wait()
    # ...and refused: the organization requires a second factor the session no longer has.
    reconnected, code = await _connect(trader, client)
    assert not reconnected
    assert code == CLOSE_FORBIDDEN


async def test_enrolling_2fa_closes_the_users_unverified_sockets(trader: Membership) -> None:
    """A session signed in with the password alone had a socket while the user had no device
    (the organization does not require 2FA); once the user enrols in another session, that
    socket no longer qualifies."""

    @database_sync_to_async
    def optional_2fa() -> None:
        trader.org.require_2fa = False
        trader.org.save(update_fields=["require_2fa"])

    await optional_2fa()
    unverified = Client()
    await database_sync_to_async(unverified.force_login)(trader.user)
    socket = await open_probe(trader, unverified)
    assert await socket.receive_nothing(timeout=0.5)  # admitted, not refused

    @database_sync_to_async
    def enrol_elsewhere() -> None:
        enrolling = Client()
        enrolling.force_login(trader.user)
        enrolling.get(SETUP)
        device = EncryptedTOTPDevice.objects.get(user=trader.user, confirmed=False)
        response = enrolling.post(SETUP, {"code": totp_code(device)})
        assert len(response.context["codes"]) == 10

    await enrol_elsewhere()

    assert await close_code(socket) == CLOSE_REAUTHORISE
    await socket.wait()
    reconnected, code = await _connect(trader, unverified)
    assert not reconnected
    assert code == CLOSE_FORBIDDEN
