"""Treasury pages: the address book, withdrawals, transfers (balances and deposits in
views_balances). Thin: each loads through a selector, writes through a service, and shows the
service's message next to its field."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from apps.accounts.stepup import (
    FORM_KEPT,
    kept_form_mark,
    kept_form_take,
    step_up_is_fresh,
    step_up_redirect,
)
from apps.funding import selectors, services
from apps.funding.forms import DestinationRequestForm, TransferForm, WithdrawalForm
from apps.funding.models import Withdrawal
from apps.orgs.access import org_view
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability

ADDRESS_REQUESTED = "Allow-listing requested: it can be used once approved."
ADDRESS_REMOVED = "Removed from the address book."
WITHDRAWAL_REQUESTED = "Withdrawal requested: it is sent once approved."
TRANSFER_REQUESTED = "Transfer requested: it is sent once approved."
CANCEL_DONE = "Cancelled."
# What the step-up page says it is for (a fresh second factor before each of these).
STEP_UP_WITHDRAWAL = "Requesting a withdrawal"
STEP_UP_TRANSFER = "Requesting a transfer"
STEP_UP_ADDRESS_REQUEST = "Allow-listing a withdrawal address"
STEP_UP_ADDRESS_REMOVE = "Removing an address from the address book"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _text(error: ValidationError | PermissionDenied) -> str:
    return " ".join(error.messages) if isinstance(error, ValidationError) else str(error)


# --- address book ------------------------------------------------------------------------------


@require_GET
@org_view(Capability.VIEW)
def address_book_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    return render(
        request,
        "funding/addresses.html",
        {
            "org": membership.org,
            "book": selectors.address_book(membership=membership),
            "can_request": membership.can(Capability.REQUEST_FUNDING),
            "subaccounts": selectors.funding_accounts(org=membership.org),
        },
    )


@require_POST
@org_view(Capability.REQUEST_FUNDING)
def address_request_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    if not step_up_is_fresh(request):
        # Back to the address book (this URL only takes POSTs) to ask again, now fresh; the
        # row's address is in the page, only an optional label was typed.
        return step_up_redirect(request, purpose=STEP_UP_ADDRESS_REQUEST)
    form = DestinationRequestForm(request.POST)
    if form.is_valid():
        account = (
            selectors.funding_accounts(org=membership.org)
            .filter(pk=form.cleaned_data["account"])
            .first()
        )
        if account is None:
            raise Http404("No such account.")
        try:
            services.destination_request(
                requester=membership,
                account=account,
                asset=form.cleaned_data["asset"],
                key=form.cleaned_data["key"],
                label=form.cleaned_data["label"],
                request=request,
            )
        except ValidationError as error:
            messages.error(request, _text(error))
        else:
            messages.success(request, ADDRESS_REQUESTED)
    else:
        messages.error(request, "Choose an address to allow-list.")
    return redirect("funding:address-book", org=membership.org.slug)


@require_POST
@org_view(Capability.VIEW)
def address_remove_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    destination = selectors.destination_get(membership=membership, pk=pk)
    if not step_up_is_fresh(request):
        return step_up_redirect(request, purpose=STEP_UP_ADDRESS_REMOVE)
    try:
        services.destination_remove(destination=destination, actor=membership, request=request)
    except ValidationError as error:
        messages.error(request, _text(error))
    else:
        messages.success(request, ADDRESS_REMOVED)
    return redirect("funding:address-book", org=membership.org.slug)


# --- withdrawals -------------------------------------------------------------------------------


@require_GET
@org_view(Capability.VIEW)
def withdrawal_list_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    withdrawals = selectors.withdrawals_recent(org=membership.org)
    template = "funding/withdrawals.html" + ("#withdrawal-list" if request.htmx else "")
    return render(
        request,
        template,
        {
            "org": membership.org,
            "withdrawals": withdrawals,
            "can_request": membership.can(Capability.REQUEST_FUNDING),
        },
    )


def _withdrawal_args(membership: Membership, form: WithdrawalForm) -> dict[str, Any]:
    data = form.cleaned_data
    return {
        "requester": membership,
        "account": data["account"],
        "destination": data["destination"],
        "asset": data["asset"],
        "amount": data["amount"],
    }


@require_http_methods(["GET", "POST"])
@org_view(Capability.REQUEST_FUNDING)
def withdrawal_new_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    org = membership.org
    kept = kept_form_take(request)
    if kept is not None:
        # Back from the step-up: what was typed, to check and send again.
        form = WithdrawalForm(kept.query(), org=org)
        kept_form_mark(form, kept)
        messages.info(request, FORM_KEPT)
    else:
        form = WithdrawalForm(request.POST or None, org=org, initial=_initial(request, org))
    preview: dict[str, Any] | None = None
    if request.method == "POST" and form.is_valid():
        args = _withdrawal_args(membership, form)
        if "preview" not in request.POST and not step_up_is_fresh(request):
            return step_up_redirect(request, purpose=STEP_UP_WITHDRAWAL, keep_form=WithdrawalForm)
        try:
            if "preview" in request.POST:
                preview = services.withdrawal_preview(**args)
            else:
                withdrawal = services.withdrawal_request(
                    **args, memo=form.cleaned_data["memo"], request=request
                )
                messages.success(request, WITHDRAWAL_REQUESTED)
                return redirect("funding:withdrawal-detail", org=org.slug, pk=withdrawal.pk)
        except ValidationError as error:
            form.add_service_errors(error)
    status = 400 if request.method == "POST" and form.errors else 200
    template = "funding/withdrawal_form.html" + ("#withdrawal-form" if request.htmx else "")
    return render(request, template, {"org": org, "form": form, "preview": preview}, status=status)


def _initial(request: HttpRequest, org: Any) -> dict[str, Any]:
    account = request.GET.get("account")
    if account and account.isdigit():
        return {"account": KrakenAccount.objects.filter(org=org, pk=int(account)).first()}
    return {}


@require_GET
@org_view(Capability.VIEW)
def withdrawal_detail_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponse:
    withdrawal = selectors.withdrawal_get(membership=membership, pk=pk)
    template = "funding/withdrawal_detail.html" + ("#withdrawal-card" if request.htmx else "")
    return render(request, template, {"org": membership.org, "withdrawal": withdrawal})


@require_POST
@org_view(Capability.REQUEST_FUNDING)
def withdrawal_cancel_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    withdrawal = selectors.withdrawal_get(membership=membership, pk=pk)
    try:
        withdrawal = services.withdrawal_cancel(
            withdrawal=withdrawal, actor=membership, request=request
        )
    except PermissionDenied:
        raise
    except ValidationError as error:
        messages.error(request, _text(error))
    else:
        messages.success(
            request,
            CANCEL_DONE if withdrawal.status == Withdrawal.Status.CANCELLED else withdrawal.error,
        )
    return redirect("funding:withdrawal-detail", org=membership.org.slug, pk=pk)


# --- transfers ---------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@org_view(Capability.VIEW)
def transfer_list_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    org = membership.org
    can_request = membership.can(Capability.REQUEST_FUNDING)
    kept = kept_form_take(request) if can_request else None
    if kept is not None:
        form = TransferForm(kept.query(), org=org)
        kept_form_mark(form, kept)
        messages.info(request, FORM_KEPT)
    else:
        form = TransferForm(request.POST or None, org=org)
    if request.method == "POST":
        if not can_request:
            raise PermissionDenied("Your role cannot request transfers.")
        if form.is_valid():
            if not step_up_is_fresh(request):
                return step_up_redirect(request, purpose=STEP_UP_TRANSFER, keep_form=TransferForm)
            data = form.cleaned_data
            try:
                services.transfer_request(
                    requester=membership,
                    from_account=data["from_account"],
                    to_account=data["to_account"],
                    asset=data["asset"],
                    amount=data["amount"],
                    memo=data["memo"],
                    request=request,
                )
            except ValidationError as error:
                form.add_service_errors(error)
            else:
                messages.success(request, TRANSFER_REQUESTED)
                return redirect("funding:transfer-list", org=org.slug)
    status = 400 if request.method == "POST" and form.errors else 200
    return render(
        request,
        "funding/transfers.html",
        {
            "org": org,
            "form": form,
            "can_request": can_request,
            "transfers": selectors.transfers_recent(org=org),
        },
        status=status,
    )
