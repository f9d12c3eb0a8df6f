"""The desk's panel on each member's home (issue 14 §1): open orders, today's P&L and recent
fills, with an empty state that says what to do next. Registered by the composition layer
(kraken_portal.dashboard) with apps.orgs.dashboard."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from apps.orgs.dashboard import DashboardPanel
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability, Role
from apps.trading import selectors_blotter as blotter
from apps.trading.pnl import pnl_report, pnl_window
from apps.trading.presentation_blotter import PairBook, fill_rows, money

RECENT_FILLS = 5
# Whose home shows the desk: the roles that trade or oversee the desk, and viewers (whose role
# is to watch it). Treasurers' and approvers' homes lead with funding and approvals; they can
# still open the blotter (every role may VIEW orders).
DESK_PANEL_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.TRADER, Role.VIEWER})


def desk_panel_context(membership: Membership) -> dict[str, Any]:
    org = membership.org
    accounts = blotter.org_accounts(org=org)
    start, end, _ = pnl_window(org, None, None)
    report = pnl_report(
        accounts=accounts, currency=org.reporting_currency, since=start, until=end, org_id=org.pk
    )
    fills = blotter.fill_page(
        accounts=accounts, filters=blotter.BlotterFilters(), size=RECENT_FILLS
    )
    rows = fill_rows(fills.rows, fills.accounts, PairBook(), timezone.get_current_timezone())
    net = report.net
    return {
        "org": org,
        "has_accounts": bool(accounts),
        "open_orders": blotter.open_order_count(org=org),
        "realised": money(report.realised, report.currency, signed=True),
        "net": money(net, report.currency, signed=True),
        "net_sign": 0 if not net else (1 if net > 0 else -1),
        "problems": report.problems,
        "fills": rows,
        "can_trade": membership.can(Capability.TRADE),
        "can_manage_accounts": membership.can(Capability.MANAGE_POLICIES),
        "tz": timezone.get_current_timezone(),
    }


def desk_panel(request: HttpRequest, membership: Membership) -> DashboardPanel | None:
    if membership.role not in DESK_PANEL_ROLES or not membership.can(Capability.VIEW):
        return None
    return DashboardPanel("trading/_desk_panel.html", "Desk", desk_panel_context(membership))
