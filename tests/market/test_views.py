"""Market pages: access for every view, the normal pages, and the watchlist."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.market.models import WatchlistItem
from apps.orgs.models import Membership

pytestmark = pytest.mark.django_db

OVERVIEW = "/o/acme/markets/"
PAIR = "/o/acme/markets/BTC-USD/"
STATUS = "/o/acme/markets/status/"
WATCH = "/o/acme/markets/BTC-USD/watch/"
UNWATCH = "/o/acme/markets/BTC-USD/unwatch/"


@pytest.mark.parametrize("url", [OVERVIEW, PAIR, STATUS, WATCH, UNWATCH])
def test_anonymous_visitors_are_sent_to_sign_in(client: Client, org: Any, url: str) -> None:
    response = client.post(url) if "watch" in url else client.get(url)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("url", [OVERVIEW, PAIR, STATUS, WATCH, UNWATCH])
def test_outsiders_get_404(
    client_for: Callable[[Membership], Client], outsider: Membership, org: Any, url: str
) -> None:
    client = client_for(outsider)
    response = client.post(url) if "watch" in url else client.get(url)
    assert response.status_code == 404


@pytest.mark.parametrize("url", [OVERVIEW, PAIR, STATUS])
def test_pages_refuse_post(
    client_for: Callable[[Membership], Client], viewer: Membership, url: str
) -> None:
    assert client_for(viewer).post(url).status_code == 405


@pytest.mark.parametrize("url", [WATCH, UNWATCH])
def test_watchlist_changes_refuse_get(
    client_for: Callable[[Membership], Client], viewer: Membership, url: str
) -> None:
    assert client_for(viewer).get(url).status_code == 405


def test_an_unknown_pair_is_404_with_a_reason(
    client_for: Callable[[Membership], Client], viewer: Membership, market_data: None
) -> None:
    response = client_for(viewer).get("/o/acme/markets/NOPE-USD/")
    assert response.status_code == 404
    assert client_for(viewer).post("/o/acme/markets/NOPE-USD/watch/").status_code == 404


def test_the_overview_shows_a_tile_per_pair_with_a_live_socket(
    client_for: Callable[[Membership], Client], viewer: Membership, market_data: None
) -> None:
    response = client_for(viewer).get(OVERVIEW)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="tile-BTC-USD"' in html
    assert 'id="tile-ETH-USD"' in html
    assert 'ws-connect="/ws/o/acme/markets/?view=tiles"' in html  # tiles unless chosen
    assert "<polyline" in html  # the sparkline
    assert 'style="' not in html  # strict CSP: no inline styles


def test_the_pair_page_shows_book_trades_chart_data_and_stats(
    client_for: Callable[[Membership], Client], viewer: Membership, market_data: None
) -> None:
    response = client_for(viewer).get(PAIR)
    assert response.status_code == 200
    html = response.content.decode()
    for element in ("ladder-BTC-USD", "trades-BTC-USD", "stats-BTC-USD", "candle-BTC-USD"):
        assert f'id="{element}"' in html
    assert 'id="candles-data"' in html
    assert "Spread" in html
    assert 'ws-connect="/ws/o/acme/markets/BTC-USD/"' in html
    assert 'style="' not in html


def test_the_status_page_shows_each_pairs_last_message(
    client_for: Callable[[Membership], Client], viewer: Membership, market_data: None
) -> None:
    response = client_for(viewer).get(STATUS)
    assert response.status_code == 200
    assert "BTC/USD" in response.content.decode()
    assert "s ago" in response.content.decode()


def test_a_member_adds_and_removes_a_pair_from_their_watchlist_with_htmx(
    client_for: Callable[[Membership], Client], viewer: Membership, market_data: None
) -> None:
    client = client_for(viewer)
    response = client.post(WATCH, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Watching" in response.content.decode()
    assert list(WatchlistItem.objects.values_list("user_id", "symbol")) == [
        (viewer.user_id, "BTC/USD")
    ]
    client.post(WATCH, headers={"HX-Request": "true"})  # idempotent
    assert WatchlistItem.objects.count() == 1
    response = client.post(UNWATCH)  # without JavaScript: back to the overview
    assert response.status_code == 302
    assert response["Location"] == OVERVIEW
    assert not WatchlistItem.objects.exists()


def test_the_layout_choice_is_remembered_and_a_bad_one_refused(
    client_for: Callable[[Membership], Client], viewer: Membership
) -> None:
    from apps.market.models import MarketPreference

    client = client_for(viewer)
    url = "/o/acme/markets/layout/"
    assert client.post(url, {"layout": "sideways"}).status_code == 400
    response = client.post(url, {"layout": "table"}, headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert MarketPreference.objects.get(user=viewer.user).layout == "table"
    assert client.post(url, {"layout": "tiles"}).status_code == 302
    assert MarketPreference.objects.get(user=viewer.user).layout == "tiles"


@pytest.mark.parametrize("interval", ["15", "1440", "7", "abc", "-1", ""])
def test_the_pair_page_takes_any_interval_and_never_fails(
    client_for: Callable[[Membership], Client],
    viewer: Membership,
    market_data: None,
    interval: str,
) -> None:
    response = client_for(viewer).get(PAIR, {"interval": interval})
    assert response.status_code == 200
    expected = interval if interval in {"15", "1440"} else "1"
    assert f'data-interval="{expected}"' in response.content.decode()


def test_longer_candles_are_built_from_the_minutes() -> None:
    from apps.market.presenters import aggregate_candles

    minutes = [
        {"time": 900 + 60 * i, "open": str(i), "high": str(10 + i), "low": str(i), "close": str(i)}
        for i in range(16)
    ]
    buckets = aggregate_candles(minutes, 15)
    assert [b["time"] for b in buckets] == [900, 1800]
    first = buckets[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (0, 24, 0, 14)
