from __future__ import annotations

from typing import Any

from django.db.models import Count, IntegerField, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from kraken_portal.navigation import NAVIGATION


def _row_count(queryset: QuerySet[Any]) -> Coalesce:
    """The number of `queryset`'s rows as a scalar subquery (its rows share one organization,
    so grouping by it leaves one row, or none: 0)."""
    counted = queryset.order_by().values("org_id").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


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
        from apps.approvals.selectors import approvals_waiting
        from apps.notifications.selectors import notifications_unread
        from apps.orgs.models import Organization

        # The header's two counts in one query: every organization page pays for it.
        unread, waiting = (
            Organization.objects.filter(pk=membership.org_id)
            .annotate(
                unread=_row_count(
                    notifications_unread(org_id=membership.org_id, user_id=membership.user_id)
                ),
                waiting=_row_count(approvals_waiting(membership=membership)),
            )
            .values_list("unread", "waiting")
            .get()
        )
        context["notification_unread"] = unread
        context["approvals_waiting"] = waiting
    return context
