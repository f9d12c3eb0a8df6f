"""Blotters: open orders, order history and fills of the organization's accounts, filtered by
account, pair, side, member, key, status and dates (days in the reader's zone), in keyset pages
where every row appears exactly once, at a constant number of queries; external orders marked;
another organization's never shown; a CSV of what is filtered, streamed and audited."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.audit.models import AuditRecord
from apps.exchange.models import ExchangeOrder
from apps.trading.selectors_blotter import (
    EXTERNAL,
    BlotterFilters,
    fill_page,
    order_page,
    org_accounts,
    pair_spellings,
)
from tests.factories import master_account
from tests.trading.blotter.conftest import DeskData, at

pytestmark = pytest.mark.django_db

OPEN = reverse("trading:blotter-open", kwargs={"org": "acme"})
HISTORY = reverse("trading:blotter-history", kwargs={"org": "acme"})
FILLS = reverse("trading:blotter-fills", kwargs={"org": "acme"})
HISTORY_CSV = reverse("trading:blotter-history-export", kwargs={"org": "acme"})
FILLS_CSV = reverse("trading:blotter-fills-export", kwargs={"org": "acme"})


def page(client: Client, url: str, params: dict[str, Any] | None = None) -> str:
    response = client.get(url, params or {})
    assert response.status_code == 200, response.content[:500]
    return unescape(response.content.decode())


def txids(html: str, orders: list[ExchangeOrder]) -> set[str]:
    return {order.txid for order in orders if f'data-row="order-{order.pk}"' in html}


# Filters.


def test_each_filter_selects_exactly_its_orders(desk: DeskData, trader, owner, subaccount) -> None:
    a = desk.order(by=trader, pair="XBTUSD", side="buy", status="closed", opened_at=at(1))
    b = desk.order(by=owner, pair="ETHUSD", side="sell", status="canceled", opened_at=at(2))
    c = desk.order(by=None, pair="XXBTZUSD", side="sell", status="closed", opened_at=at(3))
    d = desk.order(
        by=trader,
        account=subaccount,
        pair="BTC/USD",
        side="buy",
        status="expired",
        opened_at=at(60 * 24 * 3),
    )
    accounts = org_accounts(org=desk.account.org)

    def selected(**filters: Any) -> set[int]:
        rows = order_page(accounts=accounts, view="history", filters=BlotterFilters(**filters)).rows
        return {order.pk for order in rows}

    assert selected() == {a.pk, b.pk, c.pk, d.pk}
    # Every spelling Kraken uses for a pair is the same pair.
    assert selected(pair="BTC/USD") == {a.pk, c.pk, d.pk}
    assert selected(side="sell") == {b.pk, c.pk}
    assert selected(member=trader.user_id) == {a.pk, d.pk}
    assert selected(member=EXTERNAL) == {c.pk}
    assert selected(key=desk.keys[owner.pk].pk) == {b.pk}
    # The trader's key on the subaccount placed d: the main account's walk is skipped.
    assert selected(key=desk.keys[(trader.pk, subaccount.pk)].pk) == {d.pk}
    assert selected(member=trader.user_id, account=subaccount.pk) == {d.pk}
    assert selected(member=owner.user_id, pair="BTC/USD") == set()
    assert selected(status="closed") == {a.pk, c.pk}
    assert selected(account=subaccount.pk) == {d.pk}
    assert selected(since=at(0), until=at(3)) == {a.pk, b.pk}
    assert selected(pair="BTC/USD", side="sell", member=EXTERNAL) == {c.pk}


def test_open_orders_and_history_split_by_status(desk, trader) -> None:
    pending = desk.order(by=trader, status="pending")
    live = desk.order(by=trader, status="open", opened_at=at(1))
    done = desk.order(by=trader, status="closed", opened_at=at(2))
    accounts = org_accounts(org=desk.account.org)
    open_rows = order_page(accounts=accounts, view="open", filters=BlotterFilters()).rows
    history = order_page(accounts=accounts, view="history", filters=BlotterFilters()).rows
    # An order Kraken has not dated yet comes first: it is the newest.
    assert [o.pk for o in open_rows] == [pending.pk, live.pk]
    assert [o.pk for o in history] == [done.pk]


def test_pair_spellings_cover_kraken_legacy_names() -> None:
    assert set(pair_spellings("BTC/USD")) >= {"XBTUSD", "XXBTZUSD", "XBT/USD", "BTC/USD", "BTCUSD"}


def test_the_date_range_is_days_in_the_readers_time_zone(desk, viewer, client_for) -> None:
    viewer.user.time_zone = "Asia/Tokyo"
    viewer.user.save(update_fields=["time_zone"])
    # 2026-03-02 23:30 UTC is already March 3 in Tokyo (UTC+9).
    late = desk.order(status="closed", opened_at=datetime(2026, 3, 2, 23, 30, tzinfo=UTC))
    early = desk.order(status="closed", opened_at=datetime(2026, 3, 2, 14, 0, tzinfo=UTC))
    html = page(client_for(viewer), HISTORY, {"since": "2026-03-03", "until": "2026-03-03"})
    assert txids(html, [late, early]) == {late.txid}
    assert "Time (Asia/Tokyo)" in html
    assert "2026-03-03 08:30:00" in html  # the time shown in the reader's zone


def test_a_reversed_date_range_is_shown_next_to_the_field(desk, viewer, client_for) -> None:
    html = page(client_for(viewer), HISTORY, {"since": "2026-03-05", "until": "2026-03-01"})
    assert "The end date is before the start date." in html
    assert "Correct the filters to see the matching rows." in html


@pytest.mark.parametrize("url", [HISTORY, FILLS, HISTORY_CSV, FILLS_CSV, "pnl"])
def test_a_day_at_the_end_of_the_calendar_is_a_field_error_not_a_500(
    url, desk, viewer, client_for
) -> None:
    # "The day after" 9999-12-31 does not exist: it overflowed into a 500 on every one of these.
    if url == "pnl":
        url = reverse("trading:pnl", kwargs={"org": "acme"})
    for query in ({"until": "9999-12-31"}, {"since": "9999-12-31"}):
        response = client_for(viewer).get(url, query)
        assert response.status_code in (200, 400), (url, query, response.status_code)
        if not url.endswith(".csv"):
            assert "Choose a day before 2101." in unescape(response.content.decode())


def test_another_organizations_key_or_account_selects_nothing(
    desk, trader, outsider, client_for
) -> None:
    desk.order(by=trader, status="closed", opened_at=at(1))
    theirs = master_account(outsider.org)
    response = client_for(trader).get(HISTORY, {"account": theirs.pk})
    assert response.status_code == 200
    assert "Select a valid choice" in unescape(response.content.decode())


# Isolation and roles.


def test_another_organizations_orders_never_appear(desk, trader, outsider, client_for) -> None:
    mine = desk.order(by=trader, status="closed", opened_at=at(1))
    theirs_desk = DeskData(account=master_account(outsider.org))
    theirs = theirs_desk.order(by=outsider, status="closed", opened_at=at(2))
    html = page(client_for(trader), HISTORY)
    assert txids(html, [mine, theirs]) == {mine.txid}
    outsider_html = page(
        client_for(outsider), reverse("trading:blotter-history", kwargs={"org": "other"})
    )
    assert txids(outsider_html, [mine, theirs]) == {theirs.txid}
    # And the outsider cannot read ours at all.
    assert client_for(outsider).get(HISTORY).status_code == 404


@pytest.mark.parametrize("role", ["owner", "admin", "trader", "treasurer", "approver", "viewer"])
def test_every_role_may_read_the_blotters(role, request, desk, client_for) -> None:
    membership = request.getfixturevalue(role)
    for url in (OPEN, HISTORY, FILLS):
        assert client_for(membership).get(url).status_code == 200


def test_external_orders_are_marked_as_such(desk, trader, viewer, client_for) -> None:
    desk.order(by=None, status="open", opened_at=at(1))
    desk.order(by=trader, status="open", opened_at=at(2))
    html = page(client_for(viewer), OPEN)
    assert html.count('title="Placed outside the portal">External</span>') == 1
    assert "trader@acme.test" in html
    assert "trader key" in html


def test_numbers_follow_the_pairs_decimals(desk, trader, viewer, client_for, prices) -> None:
    order = desk.order(by=trader, status="open", vol="1.23456789", price="64123.4", opened_at=at(1))
    desk.fill(
        order, qty="0.5", price="64123.4", fees=[{"asset": "ZUSD", "qty": "83.36042"}], at=at(2)
    )
    html = page(client_for(viewer), OPEN)
    assert "1.23456789" in html  # lot decimals
    assert "64,123.4" in html  # tick decimals, grouped
    fills = page(client_for(viewer), FILLS)
    assert "83.36 USD" in fills  # the fee in its asset's display decimals


# Pagination.


def test_pages_go_through_every_order_once_at_a_constant_query_count(
    desk, trader, viewer, client_for, django_assert_max_num_queries
) -> None:
    orders = [desk.order(by=trader, status="closed", opened_at=at(i // 3)) for i in range(130)]
    client = client_for(viewer)
    client.get(HISTORY)  # the session's first request loads what later ones find cached
    seen: list[str] = []
    counts = []
    url = HISTORY
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        counts.append(len(queries))
        html = unescape(response.content.decode())
        seen.extend(o.txid for o in orders if f'data-row="order-{o.pk}"' in html)
        marker = (
            html.split('data-testid="next-page"')[0].rsplit('href="', 1)[-1]
            if 'data-testid="next-page"' in html
            else ""
        )
        url = (HISTORY + marker.split('"')[0]) if marker else ""
    assert sorted(seen) == sorted(o.txid for o in orders)
    assert len(seen) == len(set(seen)) == 130
    assert len(counts) == 3
    assert len(set(counts)) == 1, counts  # the same queries whatever the page


SPELLINGS = ["XBTUSD", "XXBTZUSD", "BTC/USD", "ETHUSD"]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    times=st.lists(
        st.one_of(st.none(), st.integers(min_value=0, max_value=5)), min_size=0, max_size=40
    ),
    size=st.integers(min_value=1, max_value=7),
    view=st.sampled_from(["open", "history"]),
    by_pair=st.booleans(),
)
def test_keyset_pages_show_every_row_exactly_once(
    desk, subaccount, times, size, view, by_pair
) -> None:
    ExchangeOrder.objects.all().delete()
    statuses = ["open", "closed"]
    for i, minute in enumerate(times):
        # Two accounts and several spellings of a pair: the page merges one index walk per
        # account (and per spelling when filtered by pair).
        account = subaccount if i % 3 == 0 else desk.account
        when = None if minute is None else at(minute)
        desk.order(account=account, status=statuses[i % 2], opened_at=when, pair=SPELLINGS[i % 4])
    accounts = org_accounts(org=desk.account.org)
    filters = BlotterFilters(pair="BTC/USD") if by_pair else BlotterFilters()
    seen: list[int] = []
    after = ""
    for _ in range(len(times) + 2):
        result = order_page(accounts=accounts, view=view, filters=filters, after=after, size=size)
        seen.extend(order.pk for order in result.rows)
        if result.next_cursor is None:
            break
        after = result.next_cursor
    wanted = ExchangeOrder.objects.all()
    wanted = wanted.filter(status="open") if view == "open" else wanted.exclude(status="open")
    if by_pair:
        wanted = wanted.exclude(pair="ETHUSD")
    assert sorted(seen) == sorted(wanted.values_list("pk", flat=True))
    assert len(seen) == len(set(seen))
    # Newest first: undated orders, then by time descending, ties by id descending.
    keys = [
        (o.opened_at is None, o.opened_at or at(0), o.pk)
        for o in ExchangeOrder.objects.in_bulk(seen).values()
    ]
    by_pk = {k[2]: k for k in keys}
    assert [by_pk[pk] for pk in seen] == sorted(keys, reverse=True)


def test_fill_pages_show_every_fill_exactly_once(desk, trader, subaccount) -> None:
    orders = [
        desk.order(by=trader, status="closed", opened_at=at(0)),
        desk.order(account=subaccount, status="closed", opened_at=at(0)),
    ]
    fills = [desk.fill(orders[i % 2], qty="0.01", price="50000", at=at(i // 4)) for i in range(23)]
    accounts = org_accounts(org=desk.account.org)
    seen: list[int] = []
    after = ""
    while True:
        result = fill_page(accounts=accounts, filters=BlotterFilters(), after=after, size=5)
        seen.extend(fill.pk for fill in result.rows)
        if result.next_cursor is None:
            break
        after = result.next_cursor
    assert sorted(seen) == sorted(f.pk for f in fills)
    assert len(seen) == len(set(seen))


def test_a_forged_page_marker_is_a_400_with_a_reason(desk, viewer, client_for) -> None:
    response = client_for(viewer).get(HISTORY, {"after": "not-a-marker"})
    assert response.status_code == 400
    assert b"The page marker is not one this page gave out." in response.content


def test_the_table_alone_for_htmx(desk, trader, viewer, client_for) -> None:
    desk.order(by=trader, status="open", opened_at=at(1))
    response = client_for(viewer).get(
        OPEN, headers={"HX-Request": "true", "HX-Target": "blotter-table"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="blotter-table"')
    assert "<form" not in html


# CSV.


def _csv(response: Any) -> list[list[str]]:
    """The streamed body, read as the ASGI server reads it. The stream's batches run through
    sync_to_async in this thread (thread-sensitive), so inside the test's transaction."""

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return list(csv.reader(io.StringIO(async_to_sync(collect)().decode())))


def test_the_csv_holds_what_is_filtered_and_the_export_is_audited(
    desk, trader, owner, viewer, client_for, prices
) -> None:
    for i in range(2105):  # more than one export batch
        ExchangeOrder.objects.create(
            account=desk.account,
            txid=f"BULK-{i}",
            pair="XBTUSD",
            side="buy",
            status="closed",
            vol=Decimal("0.1"),
            price=Decimal("50000.12345"),
            opened_at=at(i),
        )
    desk.order(by=owner, pair="ETHUSD", side="sell", status="closed", opened_at=at(1))
    theirs = desk.order(
        by=trader, pair="XBTUSD", side="sell", status="canceled", opened_at=at(5000)
    )

    response = client_for(viewer).get(HISTORY_CSV, {"pair": "BTC/USD"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = _csv(response)
    assert rows[0][0] == "time (UTC)"
    assert len(rows) == 1 + 2105 + 1  # the ETH order is filtered out
    first = rows[1]
    assert first[2] == theirs.txid
    assert first[14] == "trader@acme.test"
    assert first[16] == "no"
    assert rows[2][16] == "yes"  # the bulk rows have no portal operation: external
    assert rows[2][9] == "50000.1"  # BTC/USD's tick decimals, no separators
    record = AuditRecord.objects.get(action="trading.blotter_export")
    assert record.actor_email == "viewer@acme.test"
    assert record.detail == {"blotter": "history", "filters": {"pair": "BTC/USD"}}


def test_the_fills_csv_names_fees_in_their_assets(desk, trader, viewer, client_for, prices) -> None:
    order = desk.order(by=trader, status="closed", opened_at=at(0))
    desk.fill(
        order,
        qty="0.5",
        price="50000",
        fees=[{"asset": "XXBT", "qty": "0.00001"}, {"asset": "ZUSD", "qty": "1.5"}],
        at=at(1),
    )
    rows = _csv(client_for(viewer).get(FILLS_CSV))
    assert rows[0][:2] == ["time (UTC)", "account"]
    assert rows[1][10] == "0.0000100000 BTC; 1.5000 USD"  # record-keeping decimals
    assert rows[1][12] == "trader@acme.test"


def test_a_bad_filter_refuses_the_export_with_a_reason(desk, viewer, client_for) -> None:
    response = client_for(viewer).get(HISTORY_CSV, {"side": "both"})
    assert response.status_code == 400
    assert not AuditRecord.objects.filter(action="trading.blotter_export").exists()


def test_an_outsider_cannot_export(desk, outsider, client_for) -> None:
    assert client_for(outsider).get(HISTORY_CSV).status_code == 404
    assert AuditRecord.objects.filter(action="trading.blotter_export").count() == 0


def test_times_in_the_page_name_their_zone(desk, viewer, client_for) -> None:
    desk.order(status="closed", opened_at=datetime.now(tz=UTC) - timedelta(minutes=1))
    assert "Time (UTC)" in page(client_for(viewer), HISTORY)


def test_a_pair_the_feed_does_not_list_is_still_a_filter_in_any_spelling(
    desk, trader, viewer, client_for
) -> None:
    ours = desk.order(by=trader, pair="XXBTZUSD", status="closed", opened_at=at(1))
    other = desk.order(by=trader, pair="ETHUSD", status="closed", opened_at=at(2))
    html = page(client_for(viewer), HISTORY, {"pair": "XBTUSD"})  # no feeder: no market pairs
    assert txids(html, [ours, other]) == {ours.txid}
    assert '<option value="BTC/USD" selected>BTC/USD</option>' in html
