"""Base for every member socket: a signed-in member of the URL's organization whose role has
the consumer's capability, 2FA-verified where the organization requires it. The session rules
(idle, signed out, expired) are the kernel's (apps.core.consumers.SessionConsumer)."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.contrib.sessions.backends.base import SessionBase
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from apps.core.consumers import SessionConsumer
from apps.core.groups import member_group
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability

__all__ = ["MemberConsumer"]


def _session_verified(user: Any, persistent_id: Any) -> bool:
    """What django-otp's middleware decides for a page: the session's device still exists, is
    confirmed and belongs to this user. A bare device id in the session is not enough: the
    authenticator may have been removed (2FA disabled) since the session was verified."""
    if not isinstance(persistent_id, str) or not persistent_id:
        return False
    device = Device.from_persistent_id(persistent_id)
    return device is not None and device.user_id == user.pk and bool(device.confirmed)


@database_sync_to_async
def _membership_for(
    user: Any, org_slug: str, capability: Capability, persistent_id: Any
) -> Membership | None:
    membership = (
        Membership.objects.select_related("org").filter(user=user, org__slug=org_slug).first()
    )
    if membership is None or not membership.can(capability):
        return None
    if membership.org.require_2fa and not _session_verified(user, persistent_id):
        # The session was not verified with 2FA although the organization requires it.
        return None
    return membership


class MemberConsumer(SessionConsumer):
    """Accepts only signed-in members with `capability` in the URL's organization.

    Besides the user's and the session's groups, every socket joins the member's group, so
    removal or a role change closes it.
    """

    capability: Capability = Capability.VIEW
    membership: Membership | None = None

    async def authorise(self, user: Any, session: SessionBase) -> list[str] | None:
        org_slug = self.scope["url_route"]["kwargs"].get("org", "")
        # django-otp keeps the verified device's id in the session; no id, no 2FA this session.
        persistent_id = session.get(DEVICE_ID_SESSION_KEY)
        self.membership = await _membership_for(user, org_slug, self.capability, persistent_id)
        if self.membership is None:
            return None
        return [member_group(self.membership.org_id, user.pk)]
