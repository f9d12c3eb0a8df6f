"""Reads for notifications. A member sees only their own notifications in one organization."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import Http404

from apps.notifications.kinds import NotificationKind, notification_kinds
from apps.notifications.models import Notification, NotificationPreference
from apps.orgs.models import Membership

RECENT_LIMIT = 50


def notifications_of(*, membership: Membership) -> QuerySet[Notification]:
    return Notification.objects.filter(org_id=membership.org_id, recipient_id=membership.user_id)


def notifications_recent(
    *, membership: Membership, limit: int = RECENT_LIMIT
) -> list[Notification]:
    return list(notifications_of(membership=membership)[:limit])


def notifications_unread(*, org_id: int, user_id: int) -> QuerySet[Notification]:
    return Notification.objects.filter(org_id=org_id, recipient_id=user_id, read_at__isnull=True)


def notification_unread_count(*, org_id: int, user_id: int) -> int:
    return notifications_unread(org_id=org_id, user_id=user_id).count()


def notification_get_for_member(*, membership: Membership, pk: int) -> Notification:
    """The member's own notification; 404 for anyone else's, as if it did not exist."""
    try:
        return notifications_of(membership=membership).get(pk=pk)
    except Notification.DoesNotExist:
        raise Http404("No such notification.") from None


@dataclass(frozen=True)
class PreferenceRow:
    kind: NotificationKind
    email: bool


def notification_preferences(*, membership: Membership) -> list[PreferenceRow]:
    chosen = dict(
        NotificationPreference.objects.filter(membership=membership).values_list("kind", "email")
    )
    return [
        PreferenceRow(
            kind=kind, email=kind.email_required or chosen.get(kind.key, kind.default_email)
        )
        for kind in notification_kinds()
    ]


def email_wanted(*, membership_ids: dict[int, int], kind: NotificationKind) -> set[int]:
    """Of the users in `membership_ids` (user id -> membership id), those who want email
    (everyone, for a kind whose email is required)."""
    if kind.email_required:
        return set(membership_ids)
    chosen = dict(
        NotificationPreference.objects.filter(
            membership_id__in=membership_ids.values(), kind=kind.key
        ).values_list("membership_id", "email")
    )
    return {
        user_id
        for user_id, membership_id in membership_ids.items()
        if chosen.get(membership_id, kind.default_email)
    }
