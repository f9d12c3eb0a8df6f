"""The email goes out through a real Celery worker, after commit, per the member's choice."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from apps.notifications.models import Notification
from apps.notifications.services import notification_preferences_set, notify
from tests.notifications.conftest import KIND

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_the_worker_emails_those_who_want_it_after_commit(
    celery_worker_proc, owner, viewer
) -> None:
    notification_preferences_set(membership=viewer, email_kinds=set())
    with transaction.atomic():
        notify(
            org=owner.org,
            user_ids=[owner.user_id, viewer.user_id],
            kind=KIND,
            title="Worker ping",
        )

    mine = Notification.objects.get(recipient=owner.user)
    deadline = time.monotonic() + 30
    while mine.emailed_at is None and time.monotonic() < deadline:
        time.sleep(0.2)
        mine.refresh_from_db()
    assert mine.emailed_at is not None, celery_worker_proc.log()
    assert Notification.objects.get(recipient=viewer.user).emailed_at is None
