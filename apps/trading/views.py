"""The desk: one page with account and pair pickers, the book, the ticket, open orders and
fills; the ticket's live check; order detail, amend, cancel, resubmit; the kill switch.

Every view works without JavaScript (full pages, redirects after POST) and serves htmx its
fragment. Views are thin: the rules are in rules.py, the writes in services.py.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from apps.accounts.stepup import step_up_for
from apps.exchange.balances import account_balances
from apps.exchange.models import State
from apps.market import presenters as market_presenters
from apps.market import selectors as market_selectors
from apps.market.store import symbol_slug
from apps.orgs.access import org_view
from apps.orgs.dashboard import DashboardPanel
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability
from apps.trading import selectors, services, streams
from apps.trading.forms import AmendForm, KillSwitchForm, TicketForm
from apps.trading.models import DeadMansSwitch
from apps.trading.panels import desk_panel_context
from apps.trading.rules import Check, ticket_check

DEFAULT_PAIR = "BTC/USD"
SUBMITTED = "Order #{pk} submitted: it is sent to Kraken once."
ALREADY_SENT = "This ticket was already sent as order #{pk}: it is not sent a second time."
KILL_SWITCH_STEP_UP = "Halting trading for the organization"
IN_FLIGHT_MESSAGE = (
    " {count} order(s) or amend(s) were already on their way to Kraken: they are listed below."
)
HALTED_MESSAGE = "Trading is halted."
RELEASED_MESSAGE = "Trading is resumed."


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _pair_of(request: HttpRequest) -> str:
    raw = (request.POST.get("pair") or request.GET.get("pair") or DEFAULT_PAIR).strip()
    return raw[:32].replace("-", "/").upper()


def _desk_url(membership: Membership, account_id: Any = None, pair: str = "") -> str:
    url = reverse("trading:desk", kwargs={"org": membership.org.slug})
    query = []
    if account_id:
        query.append(f"account={account_id}")
    if pair:
        query.append(f"pair={symbol_slug(pair)}")
    return url + ("?" + "&".join(query) if query else "")


def ticket_context(
    *,
    membership: Membership,
    form: TicketForm,
    check: Check | None,
    pair: str,
    flash: str = "",
    submitted: Any = None,
) -> dict[str, Any]:
    """What the ticket partial needs (the desk page and each market pair page render it)."""
    rules = check.pair if check is not None else None
    if rules is None:
        from apps.trading.market import pair_rules

        rules = pair_rules(pair)
    return {
        "membership": membership,
        "form": form,
        "check": check,
        "rules": rules,
        "pair": pair,
        "halt": selectors.active_halt(org=membership.org),
        "can_trade": membership.can(Capability.TRADE),
        "flash": flash,
        "submitted": submitted,
    }


def _initial_form(membership: Membership, account_id: Any, pair: str) -> TicketForm:
    return TicketForm(
        membership=membership,
        initial={
            "account": account_id,
            "pair": pair,
            "side": "buy",
            "order_type": "limit",
            "quantity_in": "base",
            "time_in_force": "GTC",
        },
    )


def render_ticket_panel(request: HttpRequest, membership: Membership, symbol: str) -> str:
    """The ticket for a market pair page (registered with apps.market.panels)."""
    from django.middleware.csrf import get_token
    from django.template.context_processors import csp
    from django.template.loader import render_to_string

    account = selectors.desk_accounts(org=membership.org).first()
    form = _initial_form(membership, account.pk if account else None, symbol)
    context = ticket_context(membership=membership, form=form, check=None, pair=symbol)
    # Without the request's context processors: the page around the panel has run them
    # already (the header's counts, the organization switcher); the panel needs only these.
    context.update(csp(request))
    context["csrf_token"] = get_token(request)
    return render_to_string("trading/_ticket.html#pair-panel", context)


@require_GET
@org_view(Capability.VIEW)
def desk_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    account = selectors.desk_account_get(org=membership.org, pk=request.GET.get("account"))
    pair = _pair_of(request)
    form = _initial_form(membership, account.pk if account else None, pair)
    return _render_desk(request, membership, account, pair, form, None)


def _render_desk(
    request: HtmxHttpRequest,
    membership: Membership,
    account: Any,
    pair: str,
    form: TicketForm,
    check: Check | None,
    *,
    flash: str = "",
    status: int = 200,
) -> HttpResponse:
    state: dict[str, Any] = {}
    try:
        if pair in {p["symbol"] for p in market_selectors.market_pairs()}:
            state = market_selectors.market_state(symbol=pair)
    except Exception:  # the market feed's store is down: the desk still works without a book
        state = {}
    context = {
        **ticket_context(membership=membership, form=form, check=check, pair=pair, flash=flash),
        "accounts": selectors.desk_accounts(org=membership.org),
        "account": account,
        "pairs": _pair_choices(),
        "ladder": market_presenters.ladder(state) if state else None,
        "market_socket_url": f"/ws/o/{membership.org.slug}/markets/{symbol_slug(pair)}/",
        "open_orders": selectors.open_orders(org=membership.org, account=account),
        "my_orders": selectors.recent_orders(membership=membership),
        "fills": selectors.recent_fills(account=account),
        "can_halt": membership.can(Capability.MANAGE_POLICIES)
        and membership.can(Capability.OVERSEE_KEYS),
        "balances": account_balances(account=account) if account is not None else [],
        # Today's P&L, open orders and recent fills of the organization: the home page's desk
        # panel, refreshed live as fills arrive (apps.trading.live_blotter).
        "desk_panel": DashboardPanel(
            "trading/_desk_panel.html", "Desk", desk_panel_context(membership)
        ),
        "dms": DeadMansSwitch.objects.filter(account=account).first() if account else None,
        "dms_minimum": streams.minimum_timeout(),
        "dms_takeover": streams.takeover_seconds(),
    }
    return render(request, "trading/desk.html", context, status=status)


def _pair_choices() -> list[str]:
    try:
        symbols = [p["symbol"] for p in market_selectors.market_pairs()]
    except Exception:
        symbols = []
    if not symbols:
        from apps.kraken.models import AssetPair

        symbols = list(
            AssetPair.objects.filter(status="online")
            .order_by("symbol")
            .values_list("symbol", flat=True)[:50]
        )
    return symbols


def _bound_ticket(request: HttpRequest, membership: Membership) -> tuple[TicketForm, Check | None]:
    form = TicketForm(request.POST, membership=membership)
    form.is_valid()
    check = ticket_check(membership=membership, ticket=form.ticket())
    form.show(check)
    return form, check


@require_POST
@org_view(Capability.TRADE)
def ticket_check_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    """Validation and estimate as the trader types (htmx), or the review step (no JS)."""
    form, check = _bound_ticket(request, membership)
    pair = _pair_of(request)
    context = ticket_context(membership=membership, form=form, check=check, pair=pair)
    if request.htmx:
        context["oob_errors"] = True
        return render(request, "trading/_ticket.html#ticket-feedback", context)
    account = form.cleaned_data.get("account") if hasattr(form, "cleaned_data") else None
    return _render_desk(request, membership, account, pair, form, check)


@require_POST
@org_view(Capability.TRADE)
def order_submit_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    form = TicketForm(request.POST, membership=membership)
    form.is_valid()
    pair = _pair_of(request)
    ticket = form.ticket()
    started = timezone.now()
    try:
        order = services.order_submit(membership=membership, ticket=ticket, request=request)
    except services.OrderRefused as refused:
        form.show(refused.check)
        context = ticket_context(membership=membership, form=form, check=refused.check, pair=pair)
        if request.htmx:
            return render(request, "trading/_ticket.html#ticket", context, status=422)
        return _render_desk(
            request, membership, ticket.account, pair, form, refused.check, status=422
        )
    # An order written before this request began is the one this ticket placed already.
    flash = (ALREADY_SENT if order.created_at < started else SUBMITTED).format(pk=order.pk)
    if request.htmx:
        fresh = _initial_form(membership, order.account_id, pair)
        context = ticket_context(
            membership=membership, form=fresh, check=None, pair=pair, flash=flash, submitted=order
        )
        response = render(request, "trading/_ticket.html#ticket", context)
        return response
    messages.success(request, flash)
    return redirect(_desk_url(membership, order.account_id, pair))


@require_POST
@org_view(Capability.TRADE)
def preflight_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    form = TicketForm(request.POST, membership=membership)
    form.is_valid()
    template = "trading/preflight.html" + ("#preflight-body" if request.htmx else "")
    try:
        operation = services.order_preflight(membership=membership, ticket=form.ticket())
    except services.OrderRefused as refused:
        return render(
            request, template, {"refused": refused.check, "membership": membership}, status=422
        )
    return render(request, template, {"operation": operation, "membership": membership})


@require_GET
@org_view(Capability.TRADE)
def preflight_result_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponse:
    operation = selectors.preflight_get(membership=membership, pk=pk)
    template = "trading/preflight.html" + ("#preflight-body" if request.htmx else "")
    return render(request, template, {"operation": operation, "membership": membership})


@require_GET
@org_view(Capability.VIEW)
def order_detail_view(request: HtmxHttpRequest, membership: Membership, pk: int) -> HttpResponse:
    order = selectors.order_get(org=membership.org, pk=pk)
    return render(
        request,
        "trading/order.html",
        {
            "membership": membership,
            "order": order,
            "events": list(order.events.all()),
            "amend_form": AmendForm(),
            "mine": order.placed_by_id == membership.pk,
            "operation_states": State,
        },
    )


def _after_action(
    request: HtmxHttpRequest, membership: Membership, order: Any, text: str, ok: bool
) -> HttpResponseBase:
    if request.htmx:
        order.refresh_from_db()
        return render(
            request,
            "trading/_order.html#order-row",
            {"order": order, "flash": text, "flash_ok": ok},
            status=200 if ok else 409,
        )
    (messages.success if ok else messages.error)(request, text)
    return redirect("trading:order-detail", org=membership.org.slug, pk=order.pk)


@require_POST
@org_view(Capability.TRADE)
def order_amend_view(request: HtmxHttpRequest, membership: Membership, pk: int) -> HttpResponseBase:
    order = selectors.order_get(org=membership.org, pk=pk)
    form = AmendForm(request.POST)
    if not form.is_valid():
        return _after_action(request, membership, order, "Enter a valid price or quantity.", False)
    try:
        services.order_amend(
            membership=membership,
            order=order,
            price=form.cleaned_data.get("price") or "",
            quantity=form.cleaned_data.get("quantity"),
            request=request,
        )
    except PermissionDenied:
        raise
    except services.OrderRefused as refused:
        text = " ".join(m for ms in refused.check.errors.values() for m in ms)
        return _after_action(request, membership, order, text, False)
    except ValidationError as error:
        return _after_action(request, membership, order, " ".join(error.messages), False)
    return _after_action(request, membership, order, "Amend requested.", True)


@require_POST
@org_view(Capability.VIEW)
def order_cancel_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    order = selectors.order_get(org=membership.org, pk=pk)
    try:
        services.order_cancel(membership=membership, order=order, request=request)
    except ValidationError as error:
        return _after_action(request, membership, order, " ".join(error.messages), False)
    return _after_action(request, membership, order, "Cancel requested.", True)


@require_POST
@org_view(Capability.TRADE)
def order_resubmit_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    order = selectors.order_get(org=membership.org, pk=pk)
    try:
        new = services.order_resubmit(membership=membership, order=order, request=request)
    except services.OrderRefused as refused:
        text = " ".join(m for ms in refused.check.errors.values() for m in ms)
        return _after_action(request, membership, order, text, False)
    except ValidationError as error:
        return _after_action(request, membership, order, " ".join(error.messages), False)
    messages.success(request, SUBMITTED.format(pk=new.pk))
    url = reverse("trading:order-detail", kwargs={"org": membership.org.slug, "pk": new.pk})
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@require_POST
@org_view(Capability.VIEW)
def cancel_mine_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    account = selectors.desk_account_get(org=membership.org, pk=request.POST.get("account"))
    if account is None:
        messages.error(request, "The organization has no Kraken account.")
        return redirect(_desk_url(membership))
    sent, problems = services.orders_cancel_mine(
        membership=membership, account=account, request=request
    )
    messages.success(request, f"Cancel requested for {sent} of your open orders.")
    for problem in problems:
        messages.error(request, problem)
    url = _desk_url(membership, account.pk, _pair_of(request))
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@require_http_methods(["GET", "POST"])
@org_view(Capability.MANAGE_POLICIES)
@step_up_for(purpose=KILL_SWITCH_STEP_UP, keep_form=KillSwitchForm)
def kill_switch_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    if not membership.can(Capability.OVERSEE_KEYS):
        raise PermissionDenied(services.KILL_SWITCH_ROLE)
    halt = selectors.active_halt(org=membership.org)
    form = KillSwitchForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                switch = services.kill_switch_activate(
                    membership=membership,
                    cancel_all=form.cleaned_data["cancel_all"],
                    reason=form.cleaned_data.get("reason") or "",
                    request=request,
                )
            except ValidationError as error:
                form.add_error(None, " ".join(error.messages))
                status = 409
            else:
                in_flight = switch.in_flight.count()
                messages.warning(
                    request,
                    HALTED_MESSAGE
                    + (IN_FLIGHT_MESSAGE.format(count=in_flight) if in_flight else ""),
                )
                url = reverse("trading:kill-switch", kwargs={"org": membership.org.slug})
                if request.htmx:
                    return HttpResponseClientRedirect(url)
                return redirect(url)
        else:
            status = 422
    latest = membership.org.kill_switches.select_related(
        "activated_by__user", "released_by__user"
    ).prefetch_related("operations")[:10]
    return render(
        request,
        "trading/kill_switch.html",
        {
            "membership": membership,
            "form": form,
            "halt": halt,
            "in_flight": selectors.halt_in_flight(switch=halt) if halt else [],
            "history": latest,
        },
        status=status,
    )


@require_POST
@org_view(Capability.MANAGE_POLICIES)
@step_up_for(purpose=KILL_SWITCH_STEP_UP)
def kill_switch_release_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    if not membership.can(Capability.OVERSEE_KEYS):
        raise PermissionDenied(services.KILL_SWITCH_ROLE)
    try:
        services.kill_switch_release(membership=membership, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, RELEASED_MESSAGE)
    return redirect("trading:kill-switch", org=membership.org.slug)


@require_POST
@org_view(Capability.TRADE)
def dead_mans_switch_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    """Arm (with a timeout) or disarm the account's dead man's switch."""
    account = selectors.desk_account_get(org=membership.org, pk=request.POST.get("account"))
    if account is None:
        messages.error(request, "The organization has no Kraken account.")
        return redirect(_desk_url(membership))
    try:
        if request.POST.get("action") == "disarm":
            streams.dead_mans_switch_disarm(membership=membership, account=account)
            messages.success(request, "Dead man's switch disarmed.")
        else:
            try:
                timeout = int(request.POST.get("timeout") or streams.minimum_timeout())
            except ValueError:
                timeout = 0
            switch = streams.dead_mans_switch_arm(
                membership=membership, account=account, timeout=timeout
            )
            messages.success(request, f"Dead man's switch armed: {switch.timeout_seconds} seconds.")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    url = _desk_url(membership, account.pk, _pair_of(request))
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)
