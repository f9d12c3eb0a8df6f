"""The header's live parts: the unread badge, and what other apps add to the same socket.

Every organization page opens one socket (apps.notifications.consumers.LiveConsumer) from the
header. On connect it sends a snapshot of every registered part, so a page that reconnects
(after a role change, for one) is current at once; afterwards each part arrives as a member
event when it changes. Apps above this one register their parts (the approvals inbox count)
in their AppConfig.ready().
"""

from __future__ import annotations

from collections.abc import Callable

from django.template.loader import render_to_string

from apps.notifications.selectors import notification_unread_count
from apps.orgs.models import Membership

BADGE_ELEMENT = "notification-badge"
ROLE_ELEMENT = "live-role"

# A provider renders its parts for one member: [(element_id, html), ...].
SnapshotProvider = Callable[[Membership], list[tuple[str, str]]]
_providers: dict[str, SnapshotProvider] = {}


def live_snapshot_register(name: str, provider: SnapshotProvider) -> None:
    _providers[name] = provider


def badge_part(*, membership: Membership, count: int | None = None) -> tuple[str, str]:
    if count is None:
        count = notification_unread_count(org_id=membership.org_id, user_id=membership.user_id)
    html = render_to_string(
        "notifications/_badge.html#notification-badge",
        {"org": membership.org, "unread": count, "oob": True},
    )
    return BADGE_ELEMENT, html.strip()


def role_part(membership: Membership) -> tuple[str, str]:
    """The member's role as this socket was authorised: a reconnect shows the new one."""
    html = render_to_string(
        "notifications/_badge.html#live-role", {"membership": membership, "oob": True}
    )
    return ROLE_ELEMENT, html.strip()


def live_snapshot(membership: Membership) -> list[tuple[str, str]]:
    parts = [badge_part(membership=membership), role_part(membership)]
    for provider in _providers.values():
        parts.extend(provider(membership))
    return parts
