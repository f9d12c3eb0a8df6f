"""The home page: it spans accounts (the user's current organization) and orgs (memberships),
so it lives in the composition layer."""

from __future__ import annotations

from typing import cast

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from apps.accounts.models import User
from apps.core.access import login_view
from apps.orgs.selectors import NOT_A_MEMBER, memberships_of, onboarding_pending
from apps.orgs.services.organizations import user_current_org_set

STAFF_HOME_SHOWN = 5


@require_GET
@login_view
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to the organization they last worked in, or let them pick one.

    `?org=<slug>` (the organization switcher in the top bar) makes that organization the current
    one, if the user is a member: anything else is a 404, as for any outsider.
    """
    memberships = list(memberships_of(user=request.user))
    if slug := request.GET.get("org"):
        chosen = next((m for m in memberships if m.org.slug == slug), None)
        if chosen is None:
            raise Http404(NOT_A_MEMBER)
        user_current_org_set(user=cast(User, request.user), org=chosen.org)
        return redirect("orgs:dashboard", org=chosen.org.slug)
    current = getattr(request.user, "current_org_id", None)
    for membership in memberships:
        if membership.org_id == current:
            return redirect("orgs:dashboard", org=membership.org.slug)
    if len(memberships) == 1:
        return redirect("orgs:dashboard", org=memberships[0].org.slug)
    context: dict[str, object] = {"memberships": memberships}
    if request.user.is_staff:
        # Kraken's reviewers: their work is the onboarding queue, shown here, not "you are not
        # a member of any organization".
        pending = onboarding_pending()
        context["onboarding_count"] = pending.count()
        context["onboarding_oldest"] = list(pending.order_by("created_at")[:STAFF_HOME_SHOWN])
    return render(request, "core/home.html", context)
