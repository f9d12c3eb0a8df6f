"""Market pages: overview tiles, a pair's book/tape/chart, the feed's status, the watchlist."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from apps.market import presenters, selectors, services
from apps.market.models import MarketPreference
from apps.market.panels import pair_panels
from apps.market.store import symbol_slug
from apps.orgs.access import org_view
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _feed_context() -> dict[str, Any]:
    return {
        "feed": presenters.feed(**selectors.market_feed()),
        "stale_after_ms": int(settings.MARKET_STALE_AFTER * 1000),
        "exchange": presenters.exchange_status(selectors.system_status().status),
    }


def _socket_url(membership: Membership, slug: str = "", view: str = "") -> str:
    tail = f"{slug}/" if slug else ""
    query = f"?view={view}" if view else ""
    return f"/ws/o/{membership.org.slug}/markets/{tail}{query}"


# The overview table's sortable columns: (query value, heading). "symbol" sorts by name; the
# others by the exact numbers each row carries (presenters.tile "keys").
SORT_COLUMNS = (
    ("symbol", "Pair"),
    ("last", "Last"),
    ("change", "24h"),
    ("volume", "24h volume (base)"),
    ("quote-volume", "24h volume (quote)"),
    ("high", "24h high"),
    ("low", "24h low"),
    ("spread", "Spread (bps)"),
)


def _sorted(items: list[dict[str, Any]], sort: str, descending: bool) -> list[dict[str, Any]]:
    """Server-side order (without JavaScript, or on load): the script keeps it while live."""
    if sort == "symbol":
        return sorted(items, key=lambda item: item["tile"]["symbol"], reverse=descending)
    present = [item for item in items if item["tile"]["keys"].get(sort)]
    missing = [item for item in items if not item["tile"]["keys"].get(sort)]
    present.sort(key=lambda item: presenters.dec(item["tile"]["keys"][sort]), reverse=descending)
    return present + missing  # pairs without a value sort last either way


@require_GET
@org_view(Capability.VIEW)
def overview(request: HttpRequest, membership: Membership) -> HttpResponse:
    watched = set(selectors.watchlist_symbols(user=request.user))
    query = request.GET.get("q", "").strip()[:32]
    sort = request.GET.get("sort", "")
    sort = sort if sort in dict(SORT_COLUMNS) else ""
    descending = request.GET.get("dir") == "desc"
    tiles = [
        {
            "tile": presenters.tile(state),
            "watched": state["symbol"] in watched,
            "shown": query.upper() in state["symbol"].upper(),
        }
        for state in selectors.market_overview_states()
    ]
    tiles.sort(key=lambda item: not item["watched"])  # stable: watched pairs first
    if sort:
        tiles = _sorted(tiles, sort, descending)
    layout = selectors.market_layout(user=request.user)
    columns = [
        {
            "key": key,
            "label": label,
            "sorted": key == sort,
            "next": "asc" if key == sort and descending else "desc",
            "aria": ("descending" if descending else "ascending") if key == sort else "",
        }
        for key, label in SORT_COLUMNS
    ]
    return render(
        request,
        "market/overview.html",
        {
            "membership": membership,
            "tiles": tiles,
            "columns": columns,
            "query": query,
            "matches": sum(1 for item in tiles if item["shown"]),
            "sort": sort,
            "direction": "desc" if descending else "asc",
            "layout": layout,
            "layouts": MarketPreference.Layout.choices,
            "socket_url": _socket_url(membership, view=layout),
            "feeder_ok": selectors.market_feeder_ok(),
            **_feed_context(),
        },
    )


@require_GET
@org_view(Capability.VIEW)
def pair(request: HttpRequest, membership: Membership, symbol: str) -> HttpResponse:
    pair_symbol = selectors.market_symbol_from_slug(slug=symbol)
    state = selectors.market_state(symbol=pair_symbol)
    intervals = dict(presenters.INTERVALS)
    try:
        interval = int(request.GET.get("interval", "1"))
    except ValueError:
        interval = 1
    interval = interval if interval in intervals else 1
    minutes = {c["time"]: c for c in selectors.market_candles(symbol=pair_symbol)}
    minutes.update({c["time"]: c for c in state.get("candles") or []})
    one_minute = [minutes[k] for k in sorted(minutes)]
    history = (
        [] if interval == 1 else selectors.market_candles(symbol=pair_symbol, interval=interval)
    )
    candles = presenters.chart_candles(history, one_minute, interval)
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
            "chart_format": presenters.chart_format(state),
            "interval": interval,
            "interval_label": intervals[interval],
            "intervals": [
                {"minutes": m, "label": label, "current": m == interval}
                for m, label in presenters.INTERVALS
            ],
            "time_zone": getattr(request.user, "time_zone", "") or "UTC",
            "watched": pair_symbol in selectors.watchlist_symbols(user=request.user),
            "panels": pair_panels(request, membership, pair_symbol),
            "socket_url": _socket_url(membership, symbol_slug(pair_symbol)),
            "feeder_ok": selectors.market_feeder_ok(),
            **_feed_context(),
        },
    )


@require_GET
@org_view(Capability.VIEW)
def status(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    template = "market/status.html" + ("#status-panel" if request.htmx else "")
    return render(
        request,
        template,
        {
            "membership": membership,
            "status": selectors.market_status(),
            "exchange": presenters.exchange_status(selectors.system_status().status),
        },
    )


@require_POST
@org_view(Capability.VIEW)
def layout(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    """Remember tiles or table; the script has already switched the page itself."""
    try:
        services.market_layout_set(user=request.user, layout=request.POST.get("layout", ""))
    except ValidationError as error:
        return HttpResponseBadRequest(error.messages[0])
    if request.htmx:
        return HttpResponse(status=204)
    return redirect(reverse("market:overview", kwargs={"org": membership.org.slug}))


def _watch_response(
    request: HtmxHttpRequest, membership: Membership, symbol: str, watched: bool
) -> HttpResponse:
    if request.htmx:
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
def watch_add(request: HtmxHttpRequest, membership: Membership, symbol: str) -> HttpResponse:
    pair_symbol = selectors.market_symbol_from_slug(slug=symbol)
    services.watchlist_add(user=request.user, symbol=pair_symbol)
    return _watch_response(request, membership, pair_symbol, watched=True)


@require_POST
@org_view(Capability.VIEW)
def watch_remove(request: HtmxHttpRequest, membership: Membership, symbol: str) -> HttpResponse:
    pair_symbol = selectors.market_symbol_from_slug(slug=symbol)
    services.watchlist_remove(user=request.user, symbol=pair_symbol)
    return _watch_response(request, membership, pair_symbol, watched=False)
