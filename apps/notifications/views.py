from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from apps.notifications.forms import PreferencesForm
from apps.notifications.selectors import (
    notification_get_for_member,
    notification_preferences,
    notification_unread_count,
    notifications_recent,
)
from apps.notifications.services import (
    notification_mark_all_read,
    notification_mark_read,
    notification_preferences_set,
)
from apps.orgs.access import org_view
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability

PREFERENCES_SAVED = "Your notification preferences were saved."
ALL_READ = "Every notification is marked read."


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _list_response(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    context = {
        "org": membership.org,
        "notifications": notifications_recent(membership=membership),
        "unread": notification_unread_count(org_id=membership.org_id, user_id=membership.user_id),
    }
    template = "notifications/list.html" + ("#notification-list" if request.htmx else "")
    return render(request, template, context)


@require_GET
@org_view(Capability.VIEW)
def notification_list(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    return _list_response(request, membership)


@require_POST
@org_view(Capability.VIEW)
def notification_read(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    notification = notification_get_for_member(membership=membership, pk=pk)
    notification_mark_read(membership=membership, notification=notification)
    if request.htmx:
        return _list_response(request, membership)
    return redirect("notifications:list", org=membership.org.slug)


@require_POST
@org_view(Capability.VIEW)
def notification_read_all(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    notification_mark_all_read(membership=membership)
    if request.htmx:
        return _list_response(request, membership)
    messages.success(request, ALL_READ)
    return redirect("notifications:list", org=membership.org.slug)


@require_http_methods(["GET", "POST"])
@org_view(Capability.VIEW)
def preferences(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    rows = notification_preferences(membership=membership)
    initial = {"email": [row.kind.key for row in rows if row.email]}
    form = PreferencesForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if form.is_valid():
            notification_preferences_set(
                membership=membership, email_kinds=set(form.cleaned_data["email"])
            )
            messages.success(request, PREFERENCES_SAVED)
            return redirect("notifications:preferences", org=membership.org.slug)
        return render(
            request,
            "notifications/preferences.html",
            {"org": membership.org, "form": form},
            status=400,
        )
    return render(request, "notifications/preferences.html", {"org": membership.org, "form": form})
