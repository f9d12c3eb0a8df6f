"""The blotters (issue 11 §5): open orders, order history and fills of the organization's
Kraken accounts, filtered, in keyset pages, live, and exported as CSV (streamed, audited).

Every member may read them: the permission table gives every role VIEW ("balances, orders,
markets"), and a blotter shows who placed what, which an approver or viewer needs too.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable
from datetime import tzinfo
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from apps.core.trail import audit_record
from apps.exchange.models import ExchangeFill, ExchangeOrder
from apps.orgs.access import org_view
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.trading import selectors_blotter as blotter
from apps.trading.forms_blotter import FILTER_FIELDS, BlotterFilterForm
from apps.trading.presentation_blotter import (
    FILL_CSV_HEADER,
    ORDER_CSV_HEADER,
    PairBook,
    fill_csv_row,
    fill_rows,
    order_csv_row,
    order_rows,
)
from apps.trading.selectors_blotter import (
    BadCursor,
    BlotterFilters,
    Cursor,
    blotter_keys,
    blotter_members,
)

type Kind = Literal["open", "history", "fills"]

BAD_FILTERS = "Correct the filters to see the matching rows."
TITLES: dict[Kind, str] = {"open": "Open orders", "history": "Order history", "fills": "Fills"}
URL_NAMES: dict[Kind, str] = {
    "open": "trading:blotter-open",
    "history": "trading:blotter-history",
    "fills": "trading:blotter-fills",
}
EXPORT_URL_NAMES: dict[Kind, str] = {
    "open": "trading:blotter-open-export",
    "history": "trading:blotter-history-export",
    "fills": "trading:blotter-fills-export",
}
# A spreadsheet runs a cell starting with one of these as a formula: exports neutralise them.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _form(
    request: HttpRequest, membership: Membership, accounts: list[KrakenAccount], pairs: PairBook
) -> BlotterFilterForm:
    data = request.GET if any(key in request.GET for key in FILTER_FIELDS) else None
    return BlotterFilterForm(
        data,
        accounts=accounts,
        pairs=pairs.symbols,
        members=blotter_members(org=membership.org),
        keys=blotter_keys(org=membership.org),
        tz=timezone.get_current_timezone(),
    )


def _query_without(request: HttpRequest, *keys: str) -> str:
    params = request.GET.copy()
    for key in keys:
        params.pop(key, None)
    return params.urlencode()


def _blotter(request: HtmxHttpRequest, membership: Membership, kind: Kind) -> HttpResponse:
    accounts = blotter.org_accounts(org=membership.org)
    pairs = PairBook()
    form = _form(request, membership, accounts, pairs)
    tz = timezone.get_current_timezone()
    after = request.GET.get("after", "")
    rows: list[Any] = []
    next_cursor = None
    valid = not form.is_bound or form.is_valid()
    if valid:
        filters = form.filters()
        try:
            if kind == "fills":
                fills = blotter.fill_page(accounts=accounts, filters=filters, after=after)
                rows, next_cursor = (
                    fill_rows(fills.rows, fills.accounts, pairs, tz),
                    fills.next_cursor,
                )
            else:
                orders = blotter.order_page(
                    accounts=accounts, view=kind, filters=filters, after=after
                )
                rows, next_cursor = (
                    order_rows(orders.rows, orders.accounts, pairs, tz),
                    orders.next_cursor,
                )
        except BadCursor as error:
            return HttpResponseBadRequest(str(error))
    template = "trading/blotter.html"
    if request.htmx and not request.htmx.boosted:
        template += "#blotter-body" if request.htmx.target == "blotter-body" else "#blotter-table"
    query = _query_without(request, "after")
    return render(
        request,
        template,
        {
            "org": membership.org,
            "membership": membership,
            "kind": kind,
            "title": TITLES[kind],
            "tabs": [
                (k, TITLES[k], reverse(URL_NAMES[k], kwargs={"org": membership.org.slug}))
                for k in TITLES
            ],
            "url": reverse(URL_NAMES[kind], kwargs={"org": membership.org.slug}),
            "export_url": reverse(EXPORT_URL_NAMES[kind], kwargs={"org": membership.org.slug}),
            "form": form,
            "valid": valid,
            "rows": rows,
            "next_cursor": next_cursor,
            "first_page": not after,
            "query": query,
            "tz": tz,
            "bad_filters": BAD_FILTERS,
            "socket_url": f"/ws/o/{membership.org.slug}/desk/blotter/",
        },
    )


@require_GET
@org_view(Capability.VIEW)
def blotter_open_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    return _blotter(request, membership, "open")


@require_GET
@org_view(Capability.VIEW)
def blotter_history_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    return _blotter(request, membership, "history")


@require_GET
@org_view(Capability.VIEW)
def blotter_fills_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    return _blotter(request, membership, "fills")


# CSV export.


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _export_batch(
    kind: Kind, accounts: list[KrakenAccount], filters: BlotterFilters, after: str
) -> tuple[list[ExchangeOrder] | list[ExchangeFill], str | None]:
    if kind == "fills":
        page = blotter.fill_page(
            accounts=accounts, filters=filters, after=after, size=blotter.EXPORT_BATCH
        )
        return page.rows, page.next_cursor
    orders = blotter.order_page(
        accounts=accounts, view=kind, filters=filters, after=after, size=blotter.EXPORT_BATCH
    )
    return orders.rows, orders.next_cursor


async def _csv_stream(
    kind: Kind, accounts: list[KrakenAccount], filters: BlotterFilters, pairs: PairBook, tz: tzinfo
) -> AsyncIterator[str]:
    """The CSV, read in keyset batches so memory stays flat however many rows match. Async,
    because under ASGI Django would read a synchronous iterator whole first."""
    writer = csv.writer(_Echo())
    by_pk = {account.pk: account for account in accounts}
    row: Callable[[Any], list[str]]
    if kind == "fills":
        yield writer.writerow([f"time ({tz})", *FILL_CSV_HEADER[1:]])

        def row(item: Any) -> list[str]:
            return fill_csv_row(item, by_pk, pairs, tz)
    else:
        yield writer.writerow([f"time ({tz})", *ORDER_CSV_HEADER[1:]])

        def row(item: Any) -> list[str]:
            return order_csv_row(item, by_pk, pairs, tz)

    after = ""
    while True:
        batch, after_next = await sync_to_async(_export_batch)(kind, accounts, filters, after)
        if batch:
            yield "".join(writer.writerow([_cell(cell) for cell in row(item)]) for item in batch)
        if after_next is None:
            return
        after = after_next


def _export(request: HttpRequest, membership: Membership, kind: Kind) -> HttpResponseBase:
    accounts = blotter.org_accounts(org=membership.org)
    pairs = PairBook()
    form = _form(request, membership, accounts, pairs)
    if form.is_bound and not form.is_valid():
        return HttpResponseBadRequest(BAD_FILTERS + " " + form.errors.as_text())
    filters = form.filters()
    tz = timezone.get_current_timezone()
    # The export is itself on record, with what it selected.
    audit_record(
        action="trading.blotter_export",
        actor=membership,
        request=request,
        detail={"blotter": kind, "filters": form.applied() if form.is_bound else {}},
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        _csv_stream(kind, accounts, filters, pairs, tz), content_type="text/csv; charset=utf-8"
    )
    filename = f"{kind}-{membership.org.slug}-{stamp}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@org_view(Capability.VIEW)
def blotter_open_export(request: HttpRequest, membership: Membership) -> HttpResponseBase:
    return _export(request, membership, "open")


@require_GET
@org_view(Capability.VIEW)
def blotter_history_export(request: HttpRequest, membership: Membership) -> HttpResponseBase:
    return _export(request, membership, "history")


@require_GET
@org_view(Capability.VIEW)
def blotter_fills_export(request: HttpRequest, membership: Membership) -> HttpResponseBase:
    return _export(request, membership, "fills")


__all__ = [
    "Cursor",
    "blotter_fills_export",
    "blotter_fills_view",
    "blotter_history_export",
    "blotter_history_view",
    "blotter_open_export",
    "blotter_open_view",
]
