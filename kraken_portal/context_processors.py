from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from kraken_portal.navigation import NAVIGATION


def portal(request: HttpRequest) -> dict[str, Any]:
    """Navigation for the current membership and the organization switcher."""
    membership = getattr(request, "membership", None)
    user: Any = getattr(request, "user", None)
    context: dict[str, Any] = {
        "membership": membership,
        "nav_items": [],
        "switch_orgs": [],
        "notification_unread": 0,
        "approvals_waiting": None,
    }
    if user is None or not user.is_authenticated:
        return context
    from apps.orgs.selectors import memberships_of

    context["switch_orgs"] = list(memberships_of(user=user))
    if membership is not None:
        items = []
        for item in NAVIGATION:
            if not membership.can(item.capability):
                continue
            try:
                url = reverse(item.url_name, kwargs={"org": membership.org.slug})
            except NoReverseMatch:
                continue  # The app providing this entry is not installed.
            items.append({"label": item.label, "url": url, "active": request.path.startswith(url)})
        context["nav_items"] = items
        from apps.approvals.selectors import approvals_waiting_count
        from apps.notifications.selectors import notification_unread_count

        context["notification_unread"] = notification_unread_count(
            org_id=membership.org_id, user_id=membership.user_id
        )
        context["approvals_waiting"] = approvals_waiting_count(membership=membership)
    return context
