"""Treasury pages: balances (the treasury's home), the value chart and its CSV, deposits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.http import Http404, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.stepup import FORM_KEPT, kept_form_take, step_up_is_fresh, step_up_redirect
from apps.exchange.services import balances_refresh
from apps.funding import balances, deposits, selectors
from apps.funding.forms import DepositAddressForm
from apps.funding.views import HtmxHttpRequest
from apps.kraken.errors import KrakenError
from apps.orgs.access import org_view
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.vault.selectors import NoCredential

REFRESHED = "Balances read from Kraken."
STEP_UP_DEPOSIT_ADDRESS = "Asking Kraken for a new deposit address"
REFRESH_EVERY = 30  # seconds: at most one read from Kraken per account in that time (as staking)
REFRESH_TOO_SOON = (
    "The balances of {account} were read from Kraken less than {seconds} seconds ago; "
    "these are current."
)


def _range(request: HtmxHttpRequest) -> str:
    chosen = request.GET.get("range", balances.DEFAULT_RANGE)
    return chosen if chosen in balances.RANGES else balances.DEFAULT_RANGE


@require_GET
@org_view(Capability.VIEW)
def balances_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    org = membership.org
    chosen = _range(request)
    points = balances.value_series(org=org, since=timezone.now() - balances.RANGES[chosen])
    chart = [{"time": int(point.at.timestamp()), "value": f"{point.value:f}"} for point in points]
    return render(
        request,
        "funding/balances.html",
        {
            "org": org,
            "treasury": balances.treasury_view(org=org),
            "currency": org.reporting_currency,
            "ranges": [{"key": key, "current": key == chosen} for key in balances.RANGES],
            "range": chosen,
            "points": points,
            "chart": chart,
            "time_zone": getattr(request.user, "time_zone", "") or "UTC",
        },
    )


@require_GET
@org_view(Capability.VIEW)
def value_csv_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    org = membership.org
    chosen = _range(request)
    points = balances.value_series(org=org, since=timezone.now() - balances.RANGES[chosen])
    response = HttpResponse(
        balances.value_series_csv(org=org, points=points), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="treasury-value-{chosen}.csv"'
    return response


@require_POST
@org_view(Capability.VIEW)
def balances_refresh_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    account = selectors.funding_accounts(org=membership.org).filter(pk=pk).first()
    if account is None:
        raise Http404("No such account.")
    # Any member may ask, so BalanceEx and the Earn reads are throttled per account (the
    # streams keep the balances current in between).
    if not cache.add(f"funding:balances-refreshed:{account.pk}", 1, REFRESH_EVERY):
        messages.info(
            request, REFRESH_TOO_SOON.format(account=account.label, seconds=REFRESH_EVERY)
        )
        return redirect("funding:home", org=membership.org.slug)
    try:
        balances_refresh(account=account)
    except (NoCredential, KrakenError) as error:
        messages.error(request, str(getattr(error, "hint", "") or error))
    else:
        messages.success(request, REFRESHED)
    return redirect("funding:home", org=membership.org.slug)


def _account(membership: Membership, raw: str | None) -> KrakenAccount | None:
    accounts = selectors.funding_accounts(org=membership.org)
    if raw and raw.isdigit():
        return accounts.filter(pk=int(raw)).first()
    return accounts.first()


@require_http_methods(["GET", "POST"])
@org_view(Capability.VIEW)
def deposits_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    new = request.method == "POST"
    if new and not membership.can(Capability.REQUEST_FUNDING):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("Your role cannot ask for deposit addresses.")
    if new and not step_up_is_fresh(request):
        # A new address is a Kraken call that cannot be taken back: a fresh second factor.
        return step_up_redirect(
            request, purpose=STEP_UP_DEPOSIT_ADDRESS, keep_form=DepositAddressForm
        )
    kept = kept_form_take(request)
    if kept is not None:
        messages.info(request, FORM_KEPT)
    source = kept.query() if kept is not None else request.POST if new else request.GET
    account = _account(membership, source.get("account"))
    asset = (source.get("asset") or "").strip().upper()[:16]
    method = (source.get("method") or "").strip()[:64]
    page = (
        deposits.deposit_page(
            membership=membership, account=account, asset=asset, method=method, new=new
        )
        if account is not None
        else None
    )
    context: dict[str, Any] = {
        "org": membership.org,
        "accounts": selectors.funding_accounts(org=membership.org),
        "account": account,
        "asset": asset,
        "page": page,
        # The SVG is built by the qrcode library from the address (escaped in its label).
        "addresses": [
            {"entry": a, "svg": mark_safe(deposits.qr_svg(a.address))}  # noqa: S308
            for a in (page.addresses if page else [])
        ],
        "can_request": membership.can(Capability.REQUEST_FUNDING),
        "since": timezone.now() - timedelta(days=90),
    }
    return render(request, "funding/deposits.html", context)
