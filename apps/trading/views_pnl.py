"""The P&L page (issue 11 §5): per account and pair, today (the organization's business day) or
a chosen range of business days, realised by member, unrealised against the live mid, fees,
in the reporting currency; updating live. And the import of an account's opening positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from apps.core import amounts
from apps.orgs.access import org_view
from apps.orgs.dashboard import DashboardPanel
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.trading import selectors_blotter as blotter
from apps.trading.forms_blotter import day_field
from apps.trading.panels import desk_panel_context
from apps.trading.pnl import EXTERNAL, Line, Report, pnl_report, pnl_window
from apps.trading.pnl_models import OpeningLot
from apps.trading.presentation_blotter import PairBook, money
from apps.trading.services_pnl import opening_lots_import

DATE_RANGE_REVERSED = "The end date is before the start date."
RANGE_TOO_LONG = "Choose at most {days} days."
MAX_RANGE_DAYS = 3660
CHOOSE_ACCOUNT = "Choose the account whose opening positions to import."
IMPORTED = "Opening positions of {account} imported: {lots}."


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class PnlRangeForm(forms.Form):
    since = day_field("From")
    until = day_field("To")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", DATE_RANGE_REVERSED)
        elif since and until and (until - since).days > MAX_RANGE_DAYS:
            self.add_error("since", RANGE_TOO_LONG.format(days=MAX_RANGE_DAYS))
        return cleaned


@dataclass(frozen=True)
class LineRow:
    line: Line
    account: str
    pair: str
    position: str
    average_cost: str
    mid: str
    realised: str
    unrealised: str
    fees: str
    net: str
    net_sign: int


def line_rows(report: Report, accounts: dict[int, KrakenAccount], pairs: PairBook) -> list[LineRow]:
    currency = report.currency
    rows = []
    for line in report.lines:
        opening = line.pair.endswith(" opening")
        size_places = 8 if opening else pairs[line.pair].size_decimals
        average = line.cost / line.position if line.position else None
        net = line.net
        rows.append(
            LineRow(
                line=line,
                account=accounts[line.account_id].label if line.account_id in accounts else "?",
                pair=line.pair.replace(" opening", " (opening position)"),
                position=amounts.format_number(line.position, size_places),
                average_cost=money(average, currency) if average is not None else amounts.MISSING,
                mid=money(line.mid, currency) if line.position else amounts.MISSING,
                realised=money(line.realised, currency, signed=True),
                unrealised=money(line.unrealised, currency, signed=True),
                fees=money(line.fees, currency),
                net=money(net, currency, signed=True),
                net_sign=0 if net is None or net == 0 else (1 if net > 0 else -1),
            )
        )
    return rows


def pnl_context(
    membership: Membership, *, since: date | None = None, until: date | None = None
) -> dict[str, Any]:
    org = membership.org
    accounts = blotter.org_accounts(org=org)
    start, end, label = pnl_window(org, since, until)
    report = pnl_report(
        accounts=accounts, currency=org.reporting_currency, since=start, until=end, org_id=org.pk
    )
    members = dict(blotter.blotter_members(org=org))
    by_member = sorted(
        (
            (
                "External (outside the portal)"
                if who == EXTERNAL
                else members.get(int(who), f"#{who}"),
                money(value, report.currency, signed=True),
            )
            for who, value in report.by_member.items()
        ),
    )
    by_pk = {account.pk: account for account in accounts}
    zone = ZoneInfo(org.business_timezone)
    return {
        "org": org,
        "membership": membership,
        "report": report,
        "rows": line_rows(report, by_pk, PairBook()),
        "by_member": by_member,
        "window_label": label,
        "window_start": start.astimezone(zone),
        "window_end": end.astimezone(zone),
        "business_timezone": org.business_timezone,
        "totals": {
            "realised": money(report.realised, report.currency, signed=True),
            "unrealised": money(report.unrealised, report.currency, signed=True),
            "fees": money(report.fees, report.currency),
            "net": money(report.net, report.currency, signed=True),
        },
    }


@require_GET
@org_view(Capability.VIEW)
def pnl_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    data = request.GET if ("since" in request.GET or "until" in request.GET) else None
    form = PnlRangeForm(data)
    context: dict[str, Any] = {"org": membership.org, "membership": membership, "form": form}
    if not form.is_bound or form.is_valid():
        cleaned = form.cleaned_data if form.is_bound else {}
        context |= pnl_context(membership, since=cleaned.get("since"), until=cleaned.get("until"))
        context["valid"] = True
    else:
        context["valid"] = False
    accounts = blotter.org_accounts(org=membership.org)
    imported = set(
        OpeningLot.objects.filter(account__org=membership.org).values_list("account_id", flat=True)
    )
    context["import_accounts"] = [a for a in accounts if a.pk not in imported and a.is_active]
    context["can_import"] = membership.can(Capability.TRADE)
    context["url"] = reverse("trading:pnl", kwargs={"org": membership.org.slug})
    template = "trading/pnl.html"
    if request.htmx and not request.htmx.boosted:
        template += "#pnl-report"
    return render(request, template, context)


@require_POST
@org_view(Capability.TRADE)
def pnl_opening_import_view(request: HttpRequest, membership: Membership) -> HttpResponseBase:
    raw = request.POST.get("account", "")
    if not raw.isdigit():
        return HttpResponseBadRequest(CHOOSE_ACCOUNT)
    account = blotter.org_account_get(org=membership.org, pk=raw)
    try:
        result = opening_lots_import(account=account, actor=membership)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        lots = ", ".join(f"{lot.qty.normalize():f} {lot.asset}" for lot in result.created) or "none"
        messages.success(request, IMPORTED.format(account=account.label, lots=lots))
        for reason in result.skipped:
            messages.warning(request, reason)
    return redirect("trading:pnl", org=membership.org.slug)


@require_GET
@org_view(Capability.VIEW)
def desk_panel_view(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The home page's desk panel alone, for its live refresh."""
    panel = DashboardPanel("trading/_desk_panel.html", "Desk", desk_panel_context(membership))
    return render(request, "trading/_desk_panel.html#desk-panel", {"panel": panel})
