"""What each member's home shows, from what exists today: things waiting for them (their keys,
their 2FA, the onboarding queue for staff), a few markets of their watchlist, the feed's status
and recent activity relevant to their role. Registered with apps.orgs.dashboard at start-up
(kraken_portal.apps); the trading, treasury and approvals panels will register the same way.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, cast

from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import EncryptedTOTPDevice, User
from apps.accounts.selectors import two_factor_enabled
from apps.approvals.registry import approval_kinds
from apps.approvals.selectors import approvals_waiting
from apps.audit.presentation import action_title, detail_fields
from apps.audit.selectors import audit_recent
from apps.market import presenters
from apps.market import selectors as market
from apps.market.store import symbol_slug
from apps.orgs.dashboard import (
    Attention,
    DashboardPanel,
    dashboard_attention_register,
    dashboard_panel_register,
)
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability, Role
from apps.orgs.selectors import onboarding_pending
from apps.schedules.dashboard import workflows_panel
from apps.staking.panels import staking_panel
from apps.trading.panels import desk_panel
from apps.vault.models import Credential
from apps.vault.policy import assess
from apps.vault.selectors import credential_list

WATCHLIST_SHOWN = 6
# A refused key stays on the home page this long: long enough to be seen, then only on its page.
REFUSED_SHOWN_FOR = timedelta(days=7)

TWO_FACTOR_OFF = "Two-factor authentication is off for your account."
TWO_FACTOR_OFF_MANAGER = (
    "Two-factor authentication is off for your account: as {role} you need it for sensitive "
    "changes."
)
KEY_REFUSED = "Your API key “{label}” was refused: {reason}"
KEY_CANCEL_ONLY = "Your API key “{label}” can only cancel orders: {reason}"
KEY_WARNINGS = "Your API key “{label}”: {warning}"
ONBOARDING_WAITING = "{count} onboarding application{plural} waiting for review."


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)


# Needs you now.


def _has_authenticator(request: HttpRequest) -> bool:
    # A session verified with the authenticator app answers without a query.
    device: Any = getattr(request.user, "otp_device", None)
    if isinstance(device, EncryptedTOTPDevice) and device.confirmed:
        return True
    return two_factor_enabled(user=_user(request))


def two_factor_attention(request: HttpRequest, membership: Membership) -> list[Attention]:
    if _has_authenticator(request):
        return []
    manager = membership.role in (Role.OWNER, Role.ADMIN)
    text = (
        TWO_FACTOR_OFF_MANAGER.format(role=membership.get_role_display().lower())
        if manager
        else TWO_FACTOR_OFF
    )
    url = reverse("accounts:two-factor-setup")
    return [Attention(text, url, "Set it up", "warn" if manager else "info")]


def key_attention(request: HttpRequest, membership: Membership) -> list[Attention]:
    items = []
    # One query: the member's live keys, and those refused in the last days.
    keys = credential_list(membership=membership).filter(
        Q(status__in=[Credential.Status.ACTIVE, Credential.Status.CANCEL_ONLY])
        | Q(status=Credential.Status.REFUSED, revoked_at__gte=timezone.now() - REFUSED_SHOWN_FOR),
        owner=membership,
    )
    for credential in keys:
        url = reverse(
            "vault:credential-detail", kwargs={"org": membership.org.slug, "pk": credential.pk}
        )
        values = {
            "label": credential.label,
            "reason": credential.status_reason or "see the key's page.",
        }
        if credential.status == Credential.Status.REFUSED:
            items.append(Attention(KEY_REFUSED.format(**values), url, "See why", "warn"))
        elif credential.is_cancel_only:
            items.append(Attention(KEY_CANCEL_ONLY.format(**values), url, "See why", "warn"))
        elif warnings := assess(use=credential.use, permissions=credential.permissions).warnings:
            text = KEY_WARNINGS.format(label=credential.label, warning=warnings[0])
            items.append(Attention(text, url, "Review"))
    return items


def onboarding_attention(request: HttpRequest, membership: Membership) -> list[Attention]:
    if not request.user.is_staff:
        return []
    count = onboarding_pending().count()
    if not count:
        return []
    text = ONBOARDING_WAITING.format(count=count, plural="" if count == 1 else "s")
    return [Attention(text, reverse("onboarding:review-queue"), "Review")]


# Panels.


def watchlist_panel(request: HttpRequest, membership: Membership) -> DashboardPanel:
    symbols = market.watchlist_symbols(user=request.user)
    states = market.market_states(symbols=symbols[:WATCHLIST_SHOWN])
    tiles = []
    for symbol in symbols[:WATCHLIST_SHOWN]:
        state = states.get(symbol)
        if state is not None:
            tiles.append(presenters.tile(state))
        else:  # watched, but no price yet: say so rather than drop it
            tiles.append({"symbol": symbol, "slug": symbol_slug(symbol), "last": "—"})
    return DashboardPanel(
        "dashboard/_watchlist.html",
        "Your markets",
        {"tiles": tiles, "more": max(0, len(symbols) - WATCHLIST_SHOWN)},
    )


def feed_panel(request: HttpRequest, membership: Membership) -> DashboardPanel:
    pulse = market.market_feed()
    heard = pulse["heard_at"]
    return DashboardPanel(
        "dashboard/_feed.html",
        "Market data",
        {
            "ok": market.market_feeder_ok(),
            "heard_seconds": int(time.time() - heard) if heard else None,
            "rebuilding": pulse["down"],
            # Kraken's own word (maintenance, cancel_only, post_only), as the feeder received it.
            "kraken": market.system_status(),
        },
    )


APPROVALS_SHOWN = 5


def approvals_panel(request: HttpRequest, membership: Membership) -> DashboardPanel:
    """What waits for this member's decision (the inbox's first rows): one query."""
    labels = {kind.key: kind.label for kind in approval_kinds()}
    waiting = list(
        approvals_waiting(membership=membership)
        .select_related("requester")
        .order_by("created_at", "id")[: APPROVALS_SHOWN + 1]
    )
    rows = [
        {"approval": approval, "label": labels.get(approval.kind, approval.kind)}
        for approval in waiting[:APPROVALS_SHOWN]
    ]
    return DashboardPanel(
        "dashboard/_approvals.html",
        "Waiting for your approval",
        {"rows": rows, "more": len(waiting) > APPROVALS_SHOWN},
    )


def activity_panel(request: HttpRequest, membership: Membership) -> DashboardPanel:
    # Owners and admins oversee everyone's actions; other roles see what they did and what was
    # done to them (a role change, a key revoked by an admin).
    oversees = membership.can(Capability.MANAGE_MEMBERS) or membership.can(Capability.OVERSEE_KEYS)
    records = audit_recent(
        org=membership.org,
        user=None if oversees else request.user,  # type: ignore[arg-type]
        membership_id=membership.pk,
    )
    rows: list[dict[str, Any]] = [
        {
            "record": record,
            "time": timezone.localtime(record.created_at),
            "title": action_title(record.action),
            "fields": detail_fields(record.detail)[:2],
        }
        for record in records
    ]
    return DashboardPanel(
        "dashboard/_activity.html",
        "Recent activity" if oversees else "Your recent activity",
        {"rows": rows, "oversees": oversees},
    )


def treasury_panel(request: HttpRequest, membership: Membership) -> DashboardPanel:
    """Issue 14 §1: the organization's total balance and its change today, the latest funding
    activity, or an empty state that says where to start."""
    from apps.funding.balances import total_and_change_today
    from apps.funding.selectors import funding_activity

    org = membership.org
    view, day = total_and_change_today(org=org)
    return DashboardPanel(
        "dashboard/_treasury.html",
        "Treasury",
        {
            "treasury": view,
            "day": day,
            "activity": funding_activity(org=org, limit=5),
            "has_accounts": bool(view.accounts),
            "has_balances": any(a.rows for a in view.accounts),
            "can_request": membership.can(Capability.REQUEST_FUNDING),
        },
    )


def register() -> None:
    dashboard_attention_register(onboarding_attention)
    dashboard_attention_register(key_attention)
    dashboard_attention_register(two_factor_attention)
    dashboard_panel_register(approvals_panel, order=3)
    dashboard_panel_register(desk_panel, order=5)
    dashboard_panel_register(watchlist_panel, order=10)
    dashboard_panel_register(treasury_panel, order=15)
    dashboard_panel_register(staking_panel, order=17)
    dashboard_panel_register(feed_panel, order=20)
    dashboard_panel_register(activity_panel, order=30)
    dashboard_panel_register(workflows_panel, order=25)
