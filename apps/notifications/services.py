"""Writes for notifications: raise them (`notify`), mark them read, choose email per kind.

`notify` writes in the caller's transaction, so a notification exists exactly when the change
it reports committed; the emails (a Celery task per notification, ids only) and the live
unread badge go out only after that commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from apps.core.realtime import member_event_on_commit
from apps.notifications.kinds import notification_kind_get
from apps.notifications.live import badge_part
from apps.notifications.models import Notification, NotificationPreference
from apps.notifications.selectors import email_wanted, notification_unread_count
from apps.orgs.models import Membership, Organization

logger = logging.getLogger(__name__)

UNKNOWN_KIND = "Unknown notification kind."


def _publish_badges(*, org: Organization, user_ids: Iterable[int]) -> None:
    """After commit, each member's own unread count, to that member's sockets in `org` only."""

    def send() -> None:
        for membership in Membership.objects.filter(org=org, user_id__in=list(user_ids)):
            membership.org = org
            # Rendered at send time, after commit, so the count includes this change.
            part = badge_part(
                membership=membership,
                count=notification_unread_count(org_id=org.pk, user_id=membership.user_id),
            )
            member_event_on_commit(org_id=org.pk, user_ids=[membership.user_id], parts=[part])

    # member_event_on_commit outside a transaction sends at once.
    transaction.on_commit(send, robust=True)


def notify(
    *,
    org: Organization,
    user_ids: Iterable[int],
    kind: str,
    title: str,
    body: str = "",
    link: str = "",
) -> list[Notification]:
    """Notify the listed people who are members of `org` (anyone else is skipped: a
    notification never reaches outside its organization). Runs in the caller's transaction."""
    registered = notification_kind_get(kind)
    members = dict(
        Membership.objects.filter(org=org, user_id__in=set(user_ids)).values_list("user_id", "pk")
    )
    if not members:
        return []
    rows = Notification.objects.bulk_create(
        Notification(
            org=org,
            recipient_id=user_id,
            kind=kind,
            title=title[:200],
            body=body,
            link=link,
        )
        for user_id in sorted(members)
    )
    wanted = email_wanted(membership_ids=members, kind=registered)
    from apps.notifications.tasks import notification_email_task

    for row in rows:
        if row.recipient_id in wanted:
            transaction.on_commit(partial(notification_email_task.delay, row.pk), robust=True)
    _publish_badges(org=org, user_ids=members)
    return rows


@transaction.atomic(durable=True)
def notification_mark_read(*, membership: Membership, notification: Notification) -> int:
    """Returns how many rows changed (0 when it was read already)."""
    changed = Notification.objects.filter(
        pk=notification.pk,
        org_id=membership.org_id,
        recipient_id=membership.user_id,
        read_at__isnull=True,
    ).update(read_at=timezone.now())
    if changed:
        _publish_badges(org=membership.org, user_ids=[membership.user_id])
    return changed


@transaction.atomic(durable=True)
def notification_mark_all_read(*, membership: Membership) -> int:
    changed = Notification.objects.filter(
        org_id=membership.org_id, recipient_id=membership.user_id, read_at__isnull=True
    ).update(read_at=timezone.now())
    if changed:
        _publish_badges(org=membership.org, user_ids=[membership.user_id])
    return changed


@transaction.atomic(durable=True)
def notification_preferences_set(*, membership: Membership, email_kinds: set[str]) -> None:
    """Email on for the kinds in `email_kinds`, off for every other registered kind."""
    from apps.notifications.kinds import notification_kinds

    for kind in notification_kinds():
        NotificationPreference.objects.update_or_create(
            membership=membership, kind=kind.key, defaults={"email": kind.key in email_kinds}
        )


def notification_email_send(*, notification_id: int) -> bool:
    """Send one notification's email, at most once: the row is claimed before sending."""
    claimed = Notification.objects.filter(pk=notification_id, emailed_at__isnull=True).update(
        emailed_at=timezone.now()
    )
    if claimed != 1:
        return False
    notification = Notification.objects.select_related("org", "recipient").get(pk=notification_id)
    if not Membership.objects.filter(
        org_id=notification.org_id, user_id=notification.recipient_id
    ).exists():
        # Removed since it was written (the default manager hides removed members): the
        # organization's news no longer reaches them, by email either.
        return False
    link = settings.SITE_URL.rstrip("/") + notification.link if notification.link else ""
    body = "\n\n".join(part for part in (notification.body, link) if part)
    send_mail(
        f"[{notification.org.name}] {notification.title}",
        body or notification.title,
        settings.DEFAULT_FROM_EMAIL,
        [notification.recipient.email],
    )
    return True
