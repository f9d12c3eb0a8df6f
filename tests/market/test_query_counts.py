"""The market pages cost a fixed, small number of queries, whatever the watchlist holds.

Market data comes from Redis; the database is asked only for the request's session, user,
2FA device and membership, the user's watchlist, the organization switcher and the header's
counts; the overview also reads the user's tiles/table choice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.market.models import WatchlistItem
from apps.orgs.models import Membership
from tests.market.conftest import TEST_PAIRS

pytestmark = pytest.mark.django_db

OVERVIEW = "/o/acme/markets/"
PAIR = "/o/acme/markets/BTC-USD/"
# Session, user, 2FA device, membership, watchlist, organization switcher, the header's counts
# (unread notifications and approvals waiting, one query).
PAGE_QUERIES = 7
# The overview's layout (tiles or table) is a per-user preference: one more row read.
# The pair page carries the desk's order ticket (apps.market.panels): the organization's
# accounts (the default one, then the account picker), Kraken's rules for the pair (two reads
# when the pair is spelt differently), and whether trading is halted. A fixed cost as well.
TICKET_QUERIES = 5
BUDGETS = {OVERVIEW: PAGE_QUERIES + 1, PAIR: PAGE_QUERIES + TICKET_QUERIES}


@pytest.mark.parametrize("url", [OVERVIEW, PAIR])
def test_a_market_page_costs_the_same_few_queries_however_many_pairs_are_watched(
    client_for: Callable[[Membership], Client],
    trader: Membership,
    market_data: None,
    django_assert_max_num_queries: Any,
    url: str,
) -> None:
    client = client_for(trader)
    client.get(url)  # the first request of a session records when it was last seen
    with django_assert_max_num_queries(BUDGETS[url]):
        assert client.get(url).status_code == 200
    for symbol in TEST_PAIRS:
        WatchlistItem.objects.create(user=trader.user, symbol=symbol)
    with django_assert_max_num_queries(BUDGETS[url]):
        response = client.get(url)
    assert response.status_code == 200
    assert "★ Watching" in response.text
