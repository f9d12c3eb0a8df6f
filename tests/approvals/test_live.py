"""The request's timeline and the inbox count reach the requester and the approvers live,
through their header sockets; members who have nothing to do with it hear nothing."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from apps.approvals.services import approval_decide
from tests.approvals.conftest import transfer
from tests.notifications.test_socket import live_socket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections"),
]


async def opened(member):
    socket = await live_socket(member)
    connected, _ = await socket.connect()
    assert connected
    await socket.receive_from(timeout=5)  # the snapshot
    return socket


async def test_a_decision_updates_the_timeline_for_requester_and_approvers_only(
    owner, approver, treasurer, trader
) -> None:
    approval = await database_sync_to_async(transfer)(treasurer, "5000")  # two approvals
    sockets = {m.user.email: await opened(m) for m in (owner, approver, treasurer, trader)}

    await database_sync_to_async(approval_decide)(
        approval=approval,
        actor=approver,
        verdict="approve",
        fingerprint_seen=approval.fingerprint,
        stepped_up=True,
    )

    element = f'id="approval-timeline-{approval.pk}"'
    for email in ("owner@acme.test", "treasurer@acme.test", "approver@acme.test"):
        frame = ""
        while element not in frame:
            frame += await sockets[email].receive_from(timeout=5)
        assert "Approved by approver@acme.test" in frame
    # A trader can neither decide nor asked: nothing reaches them.
    assert await sockets["trader@acme.test"].receive_nothing(timeout=0.5)
    for socket in sockets.values():
        await socket.disconnect()
