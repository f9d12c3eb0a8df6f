from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from apps.core.access import login_view, public_view
from apps.orgs.selectors import memberships_of


@require_GET
@login_view
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to the organization they last worked in, or let them pick one."""
    memberships = list(memberships_of(user=request.user))
    current = getattr(request.user, "current_org_id", None)
    for membership in memberships:
        if membership.org_id == current:
            return redirect("orgs:dashboard", org=membership.org.slug)
    if len(memberships) == 1:
        return redirect("orgs:dashboard", org=memberships[0].org.slug)
    return render(request, "core/home.html", {"memberships": memberships})


@require_GET
@public_view
def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
