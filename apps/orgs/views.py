from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.core.access import org_view
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability


@require_GET
@org_view(Capability.VIEW)
def dashboard(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render(request, "orgs/dashboard.html", {"org": membership.org})
