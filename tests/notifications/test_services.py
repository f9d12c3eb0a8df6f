"""notify(): rows in the caller's transaction, only for members of the organization; email per
preference through Celery after commit; the unread badge to the member's own group."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.db import transaction

from apps.notifications.kinds import notification_kind_get
from apps.notifications.models import Notification
from apps.notifications.services import (
    notification_email_send,
    notification_mark_all_read,
    notification_mark_read,
    notification_preferences_set,
    notify,
)
from tests.notifications.conftest import KIND

pytestmark = pytest.mark.django_db


def test_it_notifies_only_members_of_the_organization(owner, viewer, outsider) -> None:
    rows = notify(
        org=owner.org,
        user_ids=[owner.user_id, viewer.user_id, outsider.user_id],
        kind=KIND,
        title="Hello",
    )

    assert sorted(r.recipient_id for r in rows) == sorted([owner.user_id, viewer.user_id])
    assert not Notification.objects.filter(recipient=outsider.user).exists()


def test_an_unregistered_kind_is_refused(owner) -> None:
    with pytest.raises(LookupError):
        notify(org=owner.org, user_ids=[owner.user_id], kind="tests.nobody", title="x")


def test_the_rows_roll_back_with_the_callers_transaction(owner) -> None:
    def change_that_fails() -> None:
        with transaction.atomic():
            notify(org=owner.org, user_ids=[owner.user_id], kind=KIND, title="Hello")
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()

    assert not Notification.objects.exists()


def test_preferences_turn_email_off_per_kind(owner, viewer) -> None:
    notification_preferences_set(membership=viewer, email_kinds=set())

    from apps.notifications.selectors import email_wanted

    wanted = email_wanted(
        membership_ids={owner.user_id: owner.pk, viewer.user_id: viewer.pk},
        kind=notification_kind_get(KIND),
    )

    assert wanted == {owner.user_id}


def test_an_email_is_sent_at_most_once(owner) -> None:
    [row] = notify(
        org=owner.org, user_ids=[owner.user_id], kind=KIND, title="Hello", link="/o/acme/"
    )

    assert notification_email_send(notification_id=row.pk) is True
    assert notification_email_send(notification_id=row.pk) is False

    [email] = mail.outbox
    assert email.to == ["owner@acme.test"]
    assert email.subject == "[Acme Capital] Hello"
    assert email.body.endswith("/o/acme/")


def test_an_email_task_for_a_vanished_row_does_nothing(db: Any) -> None:
    assert notification_email_send(notification_id=987654) is False


def test_marking_read_updates_the_count(owner, committing) -> None:
    rows = notify(org=owner.org, user_ids=[owner.user_id], kind=KIND, title="One") + notify(
        org=owner.org, user_ids=[owner.user_id], kind=KIND, title="Two"
    )

    assert notification_mark_read(membership=owner, notification=rows[0]) == 1
    assert notification_mark_read(membership=owner, notification=rows[0]) == 0
    assert notification_mark_all_read(membership=owner) == 1
    assert not Notification.objects.filter(read_at__isnull=True).exists()


def test_a_required_email_goes_out_whatever_the_preference(owner) -> None:
    from apps.notifications.kinds import notification_kind_register
    from apps.notifications.selectors import email_wanted

    required = notification_kind_register(
        "tests.alarm", "Alarms", default_email=False, email_required=True
    )
    notification_preferences_set(membership=owner, email_kinds=set())

    assert email_wanted(membership_ids={owner.user_id: owner.pk}, kind=required) == {owner.user_id}
