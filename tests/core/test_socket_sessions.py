"""A socket lives no longer than the sign-in session that opened it: signing out, going idle
or losing the session closes it with 4401, which tells the page to stop reconnecting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from apps.core import consumers
from apps.core.realtime import CLOSE_SIGNED_OUT
from apps.core.sessions import LAST_SEEN_KEY
from apps.orgs import consumers as member_consumers
from apps.orgs.models import Membership
from tests.conftest import verified_client
from tests.sockets import close_code, open_probe, session_key

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections"),
]


@pytest.fixture(autouse=True)
def quick_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    # Re-read the session half a second after the idle deadline instead of five seconds.
    monkeypatch.setattr(consumers, "SESSION_RECHECK_SLACK", 0.5)


@database_sync_to_async
def signed_in(membership: Membership) -> Client:
    return verified_client(membership.user)


@database_sync_to_async
def set_last_seen(client: Client, when: float) -> None:
    session = client.session
    session[LAST_SEEN_KEY] = when
    session.save()


async def active_socket(
    membership: Membership, settings: Any, *, idle_timeout: int
) -> tuple[Client, WebsocketCommunicator, float]:
    """A socket whose session made a request just now; the idle timeout shortened for tests.
    Returns the session's client, the socket and when that request was."""
    settings.SESSION_IDLE_TIMEOUT = idle_timeout
    client = await signed_in(membership)
    now = time.time()
    await set_last_seen(client, now)
    return client, await open_probe(membership, client), now


async def test_signing_out_closes_that_sessions_sockets_and_no_others(
    trader: Membership,
) -> None:
    laptop, desk = await signed_in(trader), await signed_in(trader)
    laptop_socket = await open_probe(trader, laptop)
    desk_socket = await open_probe(trader, desk)

    response = await database_sync_to_async(laptop.post)(reverse("accounts:logout"))
    assert response.status_code == 302

    assert await close_code(laptop_socket) == CLOSE_SIGNED_OUT
    # The same person signed in elsewhere keeps their live page.
    assert await desk_socket.receive_nothing(timeout=0.3)
    await desk_socket.disconnect()


async def test_an_idle_session_cannot_open_a_socket(trader: Membership) -> None:
    client = await signed_in(trader)
    await set_last_seen(client, time.time() - settings.SESSION_IDLE_TIMEOUT - 5)

    socket = await open_probe(trader, client)

    # Accepted only to be told why, so the page says "signed out" instead of retrying.
    assert await close_code(socket) == CLOSE_SIGNED_OUT


async def test_an_open_socket_closes_when_its_session_goes_idle(
    trader: Membership, settings: Any
) -> None:
    _, socket, _ = await active_socket(trader, settings, idle_timeout=2)

    assert await close_code(socket) == CLOSE_SIGNED_OUT


async def test_page_requests_keep_the_socket_open_past_the_first_idle_deadline(
    trader: Membership, settings: Any
) -> None:
    client, socket, opened = await active_socket(trader, settings, idle_timeout=4)

    await asyncio.sleep(2)
    # What the idle middleware records on a request (it writes at most every 30 s).
    await set_last_seen(client, time.time())
    # Idle since `opened` it would have closed 4.5 s in; the request moved that to 6.5 s.
    assert await socket.receive_nothing(timeout=max(0.0, opened + 6 - time.time()))

    assert await close_code(socket) == CLOSE_SIGNED_OUT


async def test_a_socket_closes_when_its_session_no_longer_names_the_user(
    trader: Membership, settings: Any
) -> None:
    client, socket, _ = await active_socket(trader, settings, idle_timeout=2)

    # Sessions end without the sign-out signal too (another sign-in rotating it, an
    # administrator): the session is busy, but it no longer belongs to this person.
    @database_sync_to_async
    def forget_the_user() -> None:
        session = client.session
        session.pop(SESSION_KEY)
        session[LAST_SEEN_KEY] = time.time() + 60
        session.save()

    await forget_the_user()

    assert await close_code(socket) == CLOSE_SIGNED_OUT


async def test_signing_out_while_the_socket_connects_still_closes_it(
    trader: Membership, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await signed_in(trader)
    # The session ends after the handshake read it but before the socket joined its session's
    # group, so the sign-out's message reached nobody: this interleaving is forced here.
    gone = database_sync_to_async(Session.objects.filter(session_key=session_key(client)).delete)
    checked = member_consumers._membership_for

    async def membership_then_sign_out(*args: Any) -> Any:
        membership = await checked(*args)
        await gone()
        return membership

    monkeypatch.setattr(member_consumers, "_membership_for", membership_then_sign_out)

    socket = await open_probe(trader, client)

    assert await close_code(socket) == CLOSE_SIGNED_OUT
