"""Live run cards reach each member through their own socket, with times in that member's own
time zone (rendered once per zone)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from channels.db import database_sync_to_async

from apps.accounts.models import User
from apps.schedules.models import Run
from apps.schedules.runs import run_outcome_record
from tests.notifications.test_socket import live_socket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("socket_db_connections"),
]

DUE = datetime(2026, 6, 1, 9, 0, 20, tzinfo=UTC)


async def opened(member):
    socket = await live_socket(member)
    connected, _ = await socket.connect()
    assert connected
    await socket.receive_from(timeout=5)  # the snapshot
    return socket


def queued_run(workflow) -> Run:
    return Run.objects.create(
        org=workflow.org, workflow=workflow, slot="2026-06-01T10:00 Europe/London", scheduled_at=DUE
    )


async def frame_with(socket, element: str) -> str:
    frame = ""
    while element not in frame:
        frame += await socket.receive_from(timeout=5)
    return frame


async def test_two_members_in_different_zones_each_receive_their_own_times(
    make_workflow, treasurer, approver
) -> None:
    await database_sync_to_async(User.objects.filter(pk=treasurer.user_id).update)(
        time_zone="Asia/Tokyo"
    )
    await database_sync_to_async(User.objects.filter(pk=approver.user_id).update)(
        time_zone="America/New_York"
    )
    workflow = await database_sync_to_async(make_workflow)()
    run = await database_sync_to_async(queued_run)(workflow)
    tokyo, new_york = await opened(treasurer), await opened(approver)

    await database_sync_to_async(run_outcome_record)(run_id=run.pk, outcome="Checked by hand")

    element = f'id="run-{run.pk}"'
    tokyo_frame = await frame_with(tokyo, element)
    new_york_frame = await frame_with(new_york, element)
    # 09:00:20 UTC is 18:00:20 in Tokyo and 05:00:20 in New York (summer time).
    assert "2026-06-01 18:00:20 JST" in tokyo_frame
    assert "05:00:20" not in tokyo_frame
    assert "2026-06-01 05:00:20 EDT" in new_york_frame
    assert "18:00:20" not in new_york_frame
    assert "Checked by hand" in tokyo_frame
    assert "Checked by hand" in new_york_frame
    for socket in (tokyo, new_york):
        await socket.disconnect()
