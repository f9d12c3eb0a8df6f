"""Base for every member socket: a signed-in member of the URL's organization whose role has
the consumer's capability, 2FA-verified under the same rule as pages (apps.core.access
.needs_two_factor: whenever the user has a confirmed device, and always where the organization
requires it). The session rules (idle, signed out, expired) are the kernel's
(apps.core.consumers.SessionConsumer)."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.contrib.sessions.backends.base import SessionBase
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from apps.core.consumers import SessionConsumer, stored_session
from apps.core.groups import member_group, org_group
from apps.core.realtime import CLOSE_FORBIDDEN, CLOSE_REAUTHORISE
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


def _has_confirmed_device(user: Any) -> bool:
    from django_otp import devices_for_user

    return any(True for _ in devices_for_user(user, confirmed=True))


@database_sync_to_async
def _membership_for(
    user: Any, org_slug: str, capability: Capability, persistent_id: Any
) -> Membership | None:
    # The default manager sees only active memberships: a removed member is an outsider.
    membership = (
        Membership.objects.select_related("org").filter(user=user, org__slug=org_slug).first()
    )
    if membership is None or not membership.can(capability):
        return None
    if _session_verified(user, persistent_id):
        return membership
    # Not verified this session. Pages send such a user to verification whenever they have a
    # confirmed device, not only when the organization requires 2FA (needs_two_factor); a
    # socket must not be the way around that.
    if membership.org.require_2fa or _has_confirmed_device(user):
        return None
    return membership


class MemberConsumer(SessionConsumer):
    """Accepts only signed-in members with `capability` in the URL's organization.

    Besides the user's and the session's groups, every socket joins the member's group (their
    private events; removal or a role change closes it) and the organization's group, which
    carries only `member.recheck` (a policy such as the 2FA requirement changed: each socket
    checks itself again and closes if it no longer qualifies).
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
        return [
            member_group(self.membership.org_id, user.pk),
            org_group(self.membership.org_id),
        ]

    async def recheck_after_join(self, user: Any, session: SessionBase) -> int | None:
        """Read the membership again now the member's group is joined: a removal or role
        change that committed in between published its close to nobody."""
        if self.membership is None:  # authorise() admitted no member: nothing to vouch for
            return CLOSE_FORBIDDEN
        org_slug = self.scope["url_route"]["kwargs"].get("org", "")
        now = await _membership_for(
            user, org_slug, self.capability, session.get(DEVICE_ID_SESSION_KEY)
        )
        if now is None:
            return CLOSE_FORBIDDEN
        if now.role != self.membership.role:
            # What the role change itself sends: the page reconnects and is judged afresh.
            return CLOSE_REAUTHORISE
        return None

    async def member_recheck(self, event: dict[str, Any]) -> None:
        """The organization's policy changed: admit this socket again as if it were new, with
        the session as stored now (it may have been verified since the socket opened)."""
        user = self.scope.get("user")
        session = self.scope.get("session")
        if user is None or session is None or session.session_key is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        stored = await stored_session(session.session_key)
        org_slug = self.scope["url_route"]["kwargs"].get("org", "")
        membership = await _membership_for(
            user, org_slug, self.capability, stored.get(DEVICE_ID_SESSION_KEY)
        )
        if membership is None:
            await self.close(code=CLOSE_FORBIDDEN)
