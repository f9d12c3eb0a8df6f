"""The Operations page: every exchange operation that is not settled, with its history, live,
and a "Reconcile now" action. Owners and admins (Capability.MANAGE_OPERATIONS)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from apps.exchange import selectors, services
from apps.orgs.access import org_view
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
@org_view(Capability.MANAGE_OPERATIONS)
def operation_list_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    page = selectors.operations_page(org=membership.org)
    template = "exchange/operations.html" + ("#operation-list" if request.htmx else "")
    socket_url = f"/ws/o/{membership.org.slug}/operations/"
    return render(request, template, {"page": page, "socket_url": socket_url})


@require_POST
@org_view(Capability.MANAGE_OPERATIONS)
def operation_reconcile_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    operation = selectors.operation_get(org=membership.org, pk=pk)
    status = 200
    try:
        services.operation_reconcile_request(operation=operation, membership=membership)
    except ValidationError as error:
        text, status = " ".join(error.messages), 409
        if not request.htmx:
            messages.error(request, text)
    else:
        text = services.RECONCILE_REQUESTED.format(pk=operation.pk)
        if not request.htmx:
            messages.success(request, text)
    if request.htmx:
        return render(
            request,
            "exchange/operations.html#operation-card",
            {"operation": operation, "events": list(operation.events.all()), "flash": text},
            status=status,
        )
    return redirect("exchange:operation-list", org=membership.org.slug)
