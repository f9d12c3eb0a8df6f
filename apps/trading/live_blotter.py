"""The blotters, the P&L and the home panel, live (issue 11 §5).

When an order or fill of an account changes, every member of its organization who may see the
desk (every role may VIEW orders) is sent one small part per page kind, rendered once for all:
an element that, once swapped into a page showing the newest rows, asks for that page's table
again with the reader's own filters (hx-trigger="load", hx-include of the page's filter form).
So the server renders the event once, each reader gets exactly the rows their filters select,
and a reader paging through older rows is not pulled back to the top (those pages carry no
target element, and the member socket drops parts a page has no element for).
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from apps.core.realtime import member_event_on_commit
from apps.exchange.models import AccountBalance, ExchangeFill, ExchangeOrder, Kind, Operation
from apps.orgs.models import KrakenAccount, Organization
from apps.orgs.permissions import Capability
from apps.orgs.selectors import org_members
from apps.trading.pnl import pnl_invalidate
from apps.trading.services_pnl import opening_lot_from_balance

PARTS = (
    ("blotter-live-open", "trading:blotter-open", "#blotter-filters", "#blotter-table"),
    ("blotter-live-history", "trading:blotter-history", "#blotter-filters", "#blotter-table"),
    ("blotter-live-fills", "trading:blotter-fills", "#blotter-filters", "#blotter-table"),
    ("pnl-live", "trading:pnl", "#pnl-filters", "#pnl-report"),
    ("desk-panel-live", "trading:desk-panel", "", "#desk-panel"),
)


def render_parts(org: Organization) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    for element, url_name, include, target in PARTS:
        html = render_to_string(
            "trading/_live.html",
            {
                "element": element,
                "url": reverse(url_name, kwargs={"org": org.slug}),
                "include": include,
                "target": target,
            },
        )
        parts.append((element, html))
    return parts


def audience(org: Organization) -> list[int]:
    return [m.user_id for m in org_members(org=org) if m.can(Capability.VIEW)]


def _publish(account_id: int) -> None:
    account = KrakenAccount.objects.select_related("org").filter(pk=account_id).first()
    if account is None:
        return
    org = account.org
    pnl_invalidate(org_id=org.pk)
    member_event_on_commit(org_id=org.pk, user_ids=audience(org), parts=render_parts(org))


def desk_changed_on_commit(*, account_id: int) -> None:
    """Tell the desk's pages of the account's organization to refresh, once this commits."""
    transaction.on_commit(partial(_publish, account_id), robust=True)


def _operation_settled(operation: Operation) -> None:
    # Hooks run after commit, outside a transaction: on_commit runs at once.
    desk_changed_on_commit(account_id=operation.account_id)


def _order_changed(order: ExchangeOrder, placed_by_portal: bool) -> None:
    desk_changed_on_commit(account_id=order.account_id)


def _fill_recorded(fill: ExchangeFill, placed_by_portal: bool) -> None:
    desk_changed_on_commit(account_id=fill.account_id)


def _balance_recorded(balance: AccountBalance) -> None:
    # Before an account's first fill its balances are its opening positions (services_pnl).
    opening_lot_from_balance(balance=balance)


def register() -> None:
    """From the trading app's ready(): every order or fill exchange records (the private
    streams', ours and other programs' alike) and every order operation that settles (placed,
    amended or cancelled through the portal) refreshes the desk's pages; balances recorded
    before an account's first fill become its opening lots."""
    from apps.exchange.hooks import operation_hook_register
    from apps.exchange.streams.hooks import stream_hook_register

    stream_hook_register(
        on_order=_order_changed, on_fill=_fill_recorded, on_balance=_balance_recorded
    )
    for kind in (Kind.ADD_ORDER, Kind.CANCEL_ORDER, Kind.CANCEL_ALL, Kind.AMEND_ORDER):
        operation_hook_register(kind, on_done=_operation_settled)
