"""Base for every WebSocket consumer: authenticated, organization-checked, closable on removal."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from apps.core.groups import member_group, user_group
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability

# Close code 4403: the server refused the socket (not signed in, not a member, role too low).
CLOSE_FORBIDDEN = 4403


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


class MemberConsumer(AsyncWebsocketConsumer):
    """Accepts only signed-in members with `capability` in the URL's organization.

    Every socket joins the member's group (removal closes it) and the user's private group
    (orders, balances later). Subclasses add their own groups in `joined()`.
    """

    capability: Capability = Capability.VIEW
    membership: Membership | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        org_slug = self.scope["url_route"]["kwargs"].get("org", "")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # django-otp keeps the verified device's id in the session; no id, no 2FA this session.
        persistent_id = self.scope.get("session", {}).get(DEVICE_ID_SESSION_KEY)
        self.membership = await _membership_for(user, org_slug, self.capability, persistent_id)
        if self.membership is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.private_groups = [
            member_group(self.membership.org_id, user.pk),
            user_group(user.pk),
        ]
        for group in self.private_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.joined()

    async def joined(self) -> None:
        """Hook for subclasses: join more groups, send a snapshot."""

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "private_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def session_close(self, event: dict[str, Any]) -> None:
        """Sent to the member's group when they are removed or their role changes."""
        await self.close(code=CLOSE_FORBIDDEN)
