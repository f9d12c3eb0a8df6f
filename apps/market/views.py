"""Market pages: overview tiles, a pair's book/tape/chart, the feed's status, the watchlist."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.market import presenters, selectors, services
from apps.market.store import symbol_slug
from apps.orgs.access import org_view
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability


def _feed_context() -> dict[str, Any]:
    return {
        "feed": presenters.feed(**selectors.market_feed()),
        "stale_after_ms": int(settings.MARKET_STALE_AFTER * 1000),
        "exchange": presenters.exchange_status(selectors.system_status().status),
    }


def _socket_url(membership: Membership, slug: str = "") -> str:
    tail = f"{slug}/" if slug else ""
    return f"/ws/o/{membership.org.slug}/markets/{tail}"


@require_GET
@org_view(Capability.VIEW)
def overview(request: HttpRequest, membership: Membership) -> HttpResponse:
    watched = set(selectors.watchlist_symbols(user=request.user))
    tiles = [
        {"tile": presenters.tile(state), "watched": state["symbol"] in watched}
        for state in selectors.market_overview_states()
    ]
    tiles.sort(key=lambda item: not item["watched"])  # stable: watched pairs first
    return render(
        request,
        "market/overview.html",
        {
            "membership": membership,
            "tiles": tiles,
            "socket_url": _socket_url(membership),
            "feeder_ok": selectors.market_status()["feeder_ok"],
            **_feed_context(),
        },
    )


@require_GET
@org_view(Capability.VIEW)
def pair(request: HttpRequest, membership: Membership, symbol: str) -> HttpResponse:
    pair_symbol = selectors.market_symbol_from_slug(slug=symbol)
    state = selectors.market_state(symbol=pair_symbol)
    history = {c["time"]: c for c in selectors.market_candles(symbol=pair_symbol)}
    history.update({c["time"]: c for c in state.get("candles") or []})
    candles = presenters.candle_points({"candles": [history[k] for k in sorted(history)]})
    return render(
        request,
        "market/pair.html",
        {
            "membership": membership,
            "stats": presenters.stats(state),
            "ladder": presenters.ladder(state),
            "trades": presenters.trades(state),
            "candle": presenters.last_candle(state),
            "pair_status": presenters.pair_status(state),
            "candles": candles,
            "watched": pair_symbol in selectors.watchlist_symbols(user=request.user),
            "socket_url": _socket_url(membership, symbol_slug(pair_symbol)),
            "feeder_ok": selectors.market_status()["feeder_ok"],
            **_feed_context(),
        },
    )


@require_GET
@org_view(Capability.VIEW)
def status(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render(
        request,
        "market/status.html",
        {
            "membership": membership,
            "status": selectors.market_status(),
            "exchange": presenters.exchange_status(selectors.system_status().status),
        },
    )


def _watch_response(
    request: HttpRequest, membership: Membership, symbol: str, watched: bool
) -> HttpResponse:
    if getattr(request, "htmx", False):
        context = {
            "membership": membership,
            "symbol": symbol,
            "slug": symbol_slug(symbol),
            "watched": watched,
        }
        return render(request, "market/_watch.html", context)
    return redirect(reverse("market:overview", kwargs={"org": membership.org.slug}))


@require_POST
@org_view(Capability.VIEW)
def watch_add(request: HttpRequest, membership: Membership, symbol: str) -> HttpResponse:
    pair_symbol = selectors.market_symbol_from_slug(slug=symbol)
    services.watchlist_add(user=request.user, symbol=pair_symbol)
    return _watch_response(request, membership, pair_symbol, watched=True)


@require_POST
@org_view(Capability.VIEW)
def watch_remove(request: HttpRequest, membership: Membership, symbol: str) -> HttpResponse:
    pair_symbol = selectors.market_symbol_from_slug(slug=symbol)
    services.watchlist_remove(user=request.user, symbol=pair_symbol)
    return _watch_response(request, membership, pair_symbol, watched=False)
