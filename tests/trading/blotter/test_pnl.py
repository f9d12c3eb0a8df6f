"""P&L: FIFO lots from exchange's fills, partial fills, fees in another asset, opening lots so a
sale of what was held before is not a short, realised P&L credited to the member whose order
closed the lot (or "external"), unrealised against the live mid, in the reporting currency,
for the business day and a chosen range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.trading.pnl import EXTERNAL, Unvalued, pnl_report, pnl_window
from apps.trading.pnl_models import OpeningLot
from apps.trading.services_pnl import ALREADY_IMPORTED, opening_lots_create
from tests.trading.blotter.conftest import DeskData, Prices, at

pytestmark = pytest.mark.django_db


def usd_rates(asset: str) -> Decimal:
    """Fixed rates for the arithmetic tests: BTC at 60,000 USD, EUR at 1.10 USD."""
    table = {"BTC": Decimal(60000), "EUR": Decimal("1.1"), "ETH": Decimal(3000)}
    if asset not in table:
        raise Unvalued(asset)
    return table[asset]


def report(desk: DeskData, **kwargs: Any) -> Any:
    return pnl_report(accounts=[desk.account], currency="USD", rate=usd_rates, **kwargs)


def test_a_sale_closes_the_oldest_lots_first_across_partial_fills(desk, trader) -> None:
    buy_1 = desk.order(by=trader, side="buy", vol="1")
    desk.fill(buy_1, qty="0.4", price="50000", at=at(1))  # a partial fill...
    desk.fill(buy_1, qty="0.6", price="51000", at=at(2))  # ...and the rest, dearer
    buy_2 = desk.order(by=trader, side="buy", vol="1")
    desk.fill(buy_2, qty="1", price="55000", at=at(3))
    sell = desk.order(by=trader, side="sell", vol="1.5")
    desk.fill(sell, qty="1.2", price="58000", at=at(4))

    result = report(desk)

    # FIFO: 0.4 @ 50,000, 0.6 @ 51,000, then 0.2 of the 55,000 lot.
    expected = Decimal("0.4") * 8000 + Decimal("0.6") * 7000 + Decimal("0.2") * 3000
    assert result.realised == expected == Decimal("8000")
    (line,) = result.lines
    assert line.pair == "BTC/USD"
    assert line.position == Decimal("0.8")
    assert line.cost == Decimal("0.8") * 55000
    # Unrealised against the mid (60,000): 0.8 x (60,000 - 55,000).
    assert line.unrealised == Decimal("4000")
    assert result.by_member == {trader.user_id: Decimal("8000")}


def test_fees_in_another_asset_are_valued_and_subtracted(desk, trader) -> None:
    buy = desk.order(by=trader, side="buy", pair="BTC/USD")
    desk.fill(buy, qty="1", price="50000", fees=[{"asset": "ZUSD", "qty": "20"}], at=at(1))
    sell = desk.order(by=trader, side="sell", pair="BTC/USD")
    # One fee in the base asset (valued at the fill's price), one in EUR (at EUR's rate).
    fees = [{"asset": "XXBT", "qty": "0.0001"}, {"asset": "EUR", "qty": "10"}]
    desk.fill(sell, qty="1", price="52000", fees=fees, at=at(2))

    result = report(desk)

    assert result.realised == Decimal("2000")
    assert result.fees == Decimal("20") + Decimal("0.0001") * 52000 + Decimal("10") * Decimal("1.1")
    assert result.net == Decimal("2000") - result.fees


def test_selling_more_than_was_bought_opens_a_short_that_a_later_buy_closes(desk, trader) -> None:
    sell = desk.order(by=trader, side="sell")
    desk.fill(sell, qty="2", price="60000", at=at(1))
    buy = desk.order(by=trader, side="buy")
    desk.fill(buy, qty="1.5", price="59000", at=at(2))

    result = report(desk)

    assert result.realised == Decimal("1500")  # 1.5 x (60,000 - 59,000)
    (line,) = result.lines
    assert line.position == Decimal("-0.5")
    assert line.unrealised == Decimal(0)  # short at 60,000, mid 60,000


def test_an_opening_lot_makes_a_sale_of_what_was_held_a_disposal_not_a_short(desk, trader) -> None:
    OpeningLot.objects.create(
        account=desk.account, asset="BTC", qty=Decimal(2), unit_cost=Decimal(40000), currency="USD"
    )
    sell = desk.order(by=trader, side="sell")
    desk.fill(sell, qty="1.5", price="58000", at=at(1))

    result = report(desk)

    assert result.realised == Decimal("1.5") * 18000
    lines = {line.pair: line for line in result.lines}
    assert lines["BTC opening"].position == Decimal("0.5")  # no short anywhere
    assert lines["BTC/USD"].position == Decimal(0)
    assert lines["BTC opening"].unrealised == Decimal("0.5") * 20000


def test_realised_pnl_goes_to_the_member_whose_order_closed_the_lot(desk, trader, owner) -> None:
    buy = desk.order(by=trader, side="buy")
    desk.fill(buy, qty="1", price="50000", at=at(1))
    owner_sell = desk.order(by=owner, side="sell")
    desk.fill(owner_sell, qty="0.25", price="54000", at=at(2))
    outside = desk.order(by=None, side="sell")  # placed on Kraken's site
    desk.fill(outside, qty="0.5", price="52000", at=at(3))

    result = report(desk)

    assert result.by_member == {
        owner.user_id: Decimal("1000"),
        EXTERNAL: Decimal("1000"),
    }
    assert trader.user_id not in result.by_member  # opening a lot realises nothing


def test_only_closes_inside_the_window_count_but_lots_come_from_all_history(desk, trader) -> None:
    buy = desk.order(by=trader, side="buy")
    desk.fill(buy, qty="1", price="50000", fees=[{"asset": "USD", "qty": "5"}], at=at(0))
    sell = desk.order(by=trader, side="sell")
    desk.fill(sell, qty="0.5", price="51000", fees=[{"asset": "USD", "qty": "3"}], at=at(60 * 24))

    day_two = report(desk, since=at(60 * 24 - 1), until=at(60 * 48))
    day_one = report(desk, since=at(-1), until=at(60))

    assert day_two.realised == Decimal("500")  # against the lot bought the day before
    assert day_two.fees == Decimal("3")
    assert day_one.realised == Decimal(0)
    assert day_one.fees == Decimal("5")


def test_a_pair_quoted_in_another_currency_is_converted_and_the_report_says_so(
    desk, trader
) -> None:
    buy = desk.order(by=trader, side="buy", pair="XBTEUR")
    desk.fill(buy, qty="1", price="50000", at=at(1))
    sell = desk.order(by=trader, side="sell", pair="XBTEUR")
    desk.fill(sell, qty="1", price="51000", at=at(2))

    result = report(desk)

    assert result.realised == Decimal("1000") * Decimal("1.1")
    assert result.converted is True
    assert {line.pair for line in result.lines} == {"BTC/EUR"}


def test_a_pair_without_a_rate_is_reported_as_a_problem_not_a_wrong_number(desk, trader) -> None:
    buy = desk.order(by=trader, side="buy", pair="DOTGBP")
    desk.fill(buy, qty="10", price="5", at=at(1))

    result = report(desk)

    assert result.lines == []
    assert result.problems == ["Fills on DOT/GBP cannot be valued in USD: no live GBP rate."]


def test_the_business_day_is_the_organizations_not_utc(org) -> None:
    org.business_timezone = "America/New_York"
    late_evening_utc = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # still March 2 in New York
    start, end, label = pnl_window(org, None, None, now=late_evening_utc)
    assert label == "Today"
    assert start == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    assert end - start == timedelta(hours=24)


# With the live feed's prices (the market store) and the real page.


def test_opening_lots_are_what_was_held_before_the_fills_valued_at_the_live_mid(
    desk, trader, prices: Prices
) -> None:
    prices.set("BTC/USD", "60000", spread="2")
    buy = desk.order(by=trader, side="buy")
    desk.fill(buy, qty="0.5", price="58000", at=at(1))
    # Kraken's balance now: 2.5 BTC, of which the fill above bought 0.5, and cash.
    balances = {"XXBT": Decimal("2.5"), "ZUSD": Decimal("1000"), "DOT.F": Decimal("3")}

    result = opening_lots_create(account=desk.account, balances=balances, actor=trader)

    (lot,) = result.created
    assert (lot.asset, lot.qty, lot.unit_cost, lot.currency) == (
        "BTC",
        Decimal(2),
        Decimal(60000),
        "USD",
    )
    assert lot.priced_by == "BTC/USD"
    record = AuditRecord.objects.get(action="trading.opening_lots_import")
    assert record.detail["lots"] == {"BTC": f"{lot.qty} at {lot.unit_cost}"}
    with pytest.raises(ValidationError) as error:
        opening_lots_create(account=desk.account, balances=balances, actor=trader)
    assert error.value.messages == [ALREADY_IMPORTED.format(account=desk.account.label)]


def test_the_pnl_page_shows_lines_members_and_totals_in_the_reporting_currency(
    desk, trader, viewer, client_for, prices: Prices
) -> None:
    prices.set("BTC/USD", "60000")
    now = datetime.now(tz=UTC)
    buy = desk.order(by=trader, side="buy")
    desk.fill(
        buy,
        qty="1",
        price="50000",
        fees=[{"asset": "USD", "qty": "12.5"}],
        at=now - timedelta(seconds=2),
    )
    sell = desk.order(by=None, side="sell")
    desk.fill(sell, qty="0.25", price="56000", at=now - timedelta(seconds=1))

    response = client_for(viewer).get(reverse("trading:pnl", kwargs={"org": "acme"}))

    html = unescape(response.content.decode())
    assert response.status_code == 200
    assert "+1,500.00 USD" in html  # realised: 0.25 x 6,000, by the external order
    assert "+7,500.00 USD" in html  # unrealised: 0.75 x (60,000 - 50,000)
    assert "12.50 USD" in html
    assert "+8,987.50 USD" in html  # net
    assert "External (outside the portal)" in html
    assert "Import opening positions" not in html  # a viewer cannot trade


def test_a_reversed_range_is_a_form_error_not_a_500(desk, viewer, client_for) -> None:
    url = reverse("trading:pnl", kwargs={"org": "acme"})
    response = client_for(viewer).get(url, {"since": "2026-03-05", "until": "2026-03-01"})
    assert response.status_code == 200
    assert "The end date is before the start date." in unescape(response.content.decode())


def test_a_viewer_cannot_import_opening_positions(desk, viewer, client_for) -> None:
    url = reverse("trading:pnl-opening-import", kwargs={"org": "acme"})
    response = client_for(viewer).post(url, {"account": desk.account.pk})
    assert response.status_code == 403
    assert not OpeningLot.objects.exists()


def test_importing_for_another_organizations_account_is_not_found(
    desk, trader, outsider, client_for
) -> None:
    from tests.factories import master_account

    theirs = master_account(outsider.org)
    url = reverse("trading:pnl-opening-import", kwargs={"org": "acme"})
    response = client_for(trader).post(url, {"account": theirs.pk})
    assert response.status_code == 404


def test_the_walk_is_cached_until_the_desk_changes_but_positions_follow_the_live_mid(
    desk, trader, prices: Prices, django_capture_on_commit_callbacks
) -> None:
    from apps.trading.live_blotter import desk_changed_on_commit

    prices.set("BTC/USD", "60000")
    now = datetime.now(tz=UTC)
    buy = desk.order(by=trader, side="buy")
    desk.fill(buy, qty="1", price="50000", at=now - timedelta(seconds=3))

    def current() -> Any:
        return pnl_report(
            accounts=[desk.account],
            currency="USD",
            since=now - timedelta(hours=1),
            until=now + timedelta(hours=1),
            org_id=desk.account.org_id,
        )

    assert current().unrealised == Decimal("10000")
    prices.set("BTC/USD", "61000")
    assert current().unrealised == Decimal("11000")  # the cached walk, valued now
    sell = desk.order(by=trader, side="sell")
    desk.fill(sell, qty="0.5", price="61000", at=now - timedelta(seconds=1))
    assert current().realised == Decimal(0)  # not told yet
    with django_capture_on_commit_callbacks(execute=True):
        desk_changed_on_commit(account_id=desk.account.pk)
    assert current().realised == Decimal("5500")
    assert current().unrealised == Decimal("5500")


def test_the_import_takes_exchanges_recorded_balances_when_it_has_them(
    desk, trader, client_for, prices: Prices
) -> None:
    from apps.exchange.balance_records import rest_balances_write

    prices.set("ETH/USD", "3000")
    rest_balances_write(
        account=desk.account,
        spot={"ETH": (Decimal("4"), Decimal(0)), "USD": (Decimal("100"), Decimal(0))},
        earn=None,
    )
    url = reverse("trading:pnl-opening-import", kwargs={"org": "acme"})

    response = client_for(trader).post(url, {"account": desk.account.pk}, follow=True)

    assert "Opening positions of Main account imported: 4 ETH." in unescape(
        response.content.decode()
    )
    lot = OpeningLot.objects.get()
    assert (lot.asset, lot.qty, lot.unit_cost) == ("ETH", Decimal(4), Decimal(3000))


# Opening lots recorded automatically, from the balances exchange records before the first fill.


def _balance(desk: DeskData, asset: str, qty: str, wallet: str = "spot") -> Any:
    from apps.exchange.models import AccountBalance

    row, _ = AccountBalance.objects.update_or_create(
        account=desk.account,
        asset=asset,
        wallet_type=wallet,
        wallet_id="main" if wallet == "spot" else "flex",
        defaults={"balance": Decimal(qty), "source": "stream", "updated_at": datetime.now(tz=UTC)},
    )
    return row


def test_balances_before_the_first_fill_are_the_opening_lots_and_fills_freeze_them(
    desk, trader, prices: Prices
) -> None:
    from apps.trading.services_pnl import OPENING_LOT_RECORDED, opening_lot_from_balance

    prices.set("BTC/USD", "60000")
    lot = opening_lot_from_balance(balance=_balance(desk, "BTC", "2"))
    assert lot is not None
    assert (lot.qty, lot.unit_cost, lot.currency) == (Decimal(2), Decimal(60000), "USD")
    prices.set("BTC/USD", "61000")
    opening_lot_from_balance(balance=_balance(desk, "BTC", "2.5"))  # a deposit, still no fill
    assert OpeningLot.objects.get().qty == Decimal("2.5")
    assert opening_lot_from_balance(balance=_balance(desk, "USD", "1000")) is None  # cash
    assert opening_lot_from_balance(balance=_balance(desk, "BTC", "1", wallet="earn")) is None

    sell = desk.order(by=trader, side="sell")
    desk.fill(sell, qty="0.5", price="62000", at=at(1))
    opening_lot_from_balance(balance=_balance(desk, "BTC", "2"))  # after the sale
    lot = OpeningLot.objects.get()
    assert (lot.qty, lot.unit_cost) == (Decimal("2.5"), Decimal(61000))  # as before the fill
    assert AuditRecord.objects.filter(action=OPENING_LOT_RECORDED).count() == 2
    result = report(desk)
    assert result.realised == Decimal("0.5") * 1000  # a disposal, not a short


def test_the_stream_hook_records_opening_lots(
    desk, prices: Prices, django_capture_on_commit_callbacks
) -> None:
    from apps.exchange.streams.hooks import (
        balance_hooks_on_commit,
        stream_hook_register,
        stream_hooks_isolated,
    )
    from apps.trading.live_blotter import _balance_recorded

    prices.set("ETH/USD", "3000")
    with stream_hooks_isolated(), django_capture_on_commit_callbacks(execute=True):
        stream_hook_register(on_balance=_balance_recorded)
        balance_hooks_on_commit(_balance(desk, "ETH", "7"))
    assert OpeningLot.objects.get().qty == Decimal(7)
