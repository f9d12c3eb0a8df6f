"""Staking pages: the overview (holdings, requests, rewards), the strategies catalogue and the
(de)allocation form. Thin: reads from selectors, writes through services."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from apps.accounts.stepup import FORM_KEPT, kept_form_mark, kept_form_take, step_up_for
from apps.orgs.access import org_view
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability
from apps.staking import selectors, services
from apps.staking.forms import StakeRequestForm
from apps.staking.selectors import LOCK_TYPES, SORTS

STEP_UP_PURPOSE = "Allocating or deallocating Earn funds"

CANCELLED = "Request cancelled."
WHICH_REQUEST = "Say which request to cancel (request_id)."


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
@org_view(Capability.VIEW)
def overview_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    org = membership.org
    points = selectors.reward_series(org=org)
    context = {
        "overview": selectors.overview(org=org),
        "open_requests": [
            (row, selectors.queue_position(row)) for row in selectors.requests_open(org=org)
        ],
        "recent_requests": selectors.requests_recent(org=org),
        "reward_points": points,
        "chart": selectors.chart_points(points),
        "can_request": membership.can(Capability.REQUEST_FUNDING),
        # Exchange's Earn-aware balances: Earn funds counted once, spendable by its one rule.
        "balances": [
            (account, services.balances_current(account=account))
            for account in selectors.accounts(org=org)
        ],
    }
    template = "staking/overview.html" + ("#holdings" if request.htmx else "")
    return render(request, template, context)


@require_GET
@org_view(Capability.VIEW)
def strategies_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    org = membership.org
    params = request.GET
    account = None
    if params.get("account"):
        account = selectors.account_get(org=org, pk=params["account"])
    sort = params.get("sort", "apr")
    catalogue = selectors.catalogue(
        org=org,
        account=account,
        asset=params.get("asset", ""),
        lock_type=params.get("lock_type", ""),
        allocatable_only=params.get("allocatable") == "1",
        sort=sort if sort in SORTS else "apr",
    )
    context = {
        "catalogue": catalogue,
        "filters": params,
        "lock_types": LOCK_TYPES,
        "sorts": list(SORTS),
        "can_request": membership.can(Capability.REQUEST_FUNDING),
    }
    template = "staking/strategies.html" + ("#strategy-table" if request.htmx else "")
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@org_view(Capability.REQUEST_FUNDING)
@step_up_for(purpose=STEP_UP_PURPOSE, keep_form=StakeRequestForm)
def request_create_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    accounts = selectors.accounts(org=membership.org)
    status = 200
    kept = kept_form_take(request)
    if kept is not None:
        form = StakeRequestForm(kept.query(), accounts=accounts)
        kept_form_mark(form, kept)
        messages.info(request, FORM_KEPT)
    elif request.method == "POST":
        form = StakeRequestForm(request.POST, accounts=accounts)
        if form.is_valid():
            data = form.cleaned_data
            try:
                _row, message = services.stake_request_create(
                    membership=membership,
                    account=data["account"],
                    strategy_id=data["strategy_id"],
                    direction=data["direction"],
                    amount=data["amount"],
                    request=request,
                )
            except ValidationError as error:
                form.add_error(None, error)
                status = 400
            except PermissionDenied as error:
                form.add_error(None, str(error))
                status = 403
            else:
                messages.success(request, message)
                return redirect("staking:overview", org=membership.org.slug)
        else:
            status = 400
    else:
        initial = {
            "account": request.GET.get("account") or (accounts[0].pk if accounts else None),
            "strategy_id": request.GET.get("strategy", ""),
            "direction": request.GET.get("direction", "allocate"),
        }
        form = StakeRequestForm(initial=initial, accounts=accounts)
    return render(request, "staking/request_form.html", {"form": form}, status=status)


@require_POST
@org_view(Capability.REQUEST_FUNDING)
def request_cancel_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    request_id = request.POST.get("request_id", "")
    if not request_id.isdigit():
        return HttpResponseBadRequest(WHICH_REQUEST)
    row = selectors.request_get(org=membership.org, pk=request_id)
    try:
        services.stake_request_cancel(row=row, membership=membership)
    except (ValidationError, PermissionDenied) as error:
        text = " ".join(getattr(error, "messages", [str(error)]))
        messages.error(request, text)
        if request.htmx:
            return HttpResponse(text, status=409)
    else:
        messages.success(request, CANCELLED)
    return redirect("staking:overview", org=membership.org.slug)
