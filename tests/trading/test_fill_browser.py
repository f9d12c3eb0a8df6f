"""The second half of the desk's Chromium proof (issue 11): a trader places a limit buy with the
keyboard and sees it open, then the sandbox's market moves through it (its control API, as
another participant trading against the book would) and the trader's desk shows, without a
reload, the order filled, the fill, today's P&L and the account's balance changed. Real
parts throughout: the ASGI server, a Celery worker that sends the order, `manage.py streams` as
deployed (a subprocess) reporting Kraken's executions and balances, and the sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from apps.accounts.services import totp_device_create
from apps.exchange.models import AccountBalance, ExchangeFill
from apps.market.selectors import _empty_state
from apps.market.store import FEEDER_KEY, dumps, state_key
from apps.orgs.models import Membership
from apps.trading.models import Order, OrderState
from apps.trading.presentation_blotter import money
from tests.exchange.conftest import eventually
from tests.exchange.test_streams_standby import commands, subscribed_by  # noqa: F401 - fixture
from tests.market.conftest import clear_market_keys
from tests.plugins.celery_worker import sandbox_environment
from tests.plugins.sandbox import SandboxProcess, start_sandbox, stop_sandbox
from tests.trading.blotter.conftest import MARKET_PAIRS, Prices
from tests.trading.conftest import TradingDesk
from tests.vault.conftest import KEK_1

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

QUANTITY = Decimal("0.01")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    """A sandbox of this test's own, its clock on the wall clock's time: "today's P&L" counts
    the fill's fee only if Kraken stamps the fill today, and the session's sandbox may have been
    fast-forwarded by earlier tests."""
    own = start_sandbox()
    try:
        yield own
    finally:
        stop_sandbox(own)


@pytest.fixture
def portal_server_env(sandbox: Any) -> dict[str, str]:
    return {**sandbox_environment(sandbox), "PORTAL_KEYRING": f"k1:{KEK_1}"}


@pytest.fixture
def worker(_celery_worker_pool: Any, sandbox: Any) -> Any:
    return _celery_worker_pool.get(
        {**sandbox_environment(sandbox), "PORTAL_KEYRING": f"k1:{KEK_1}", "KRAKEN_TIER": "pro"}
    )


@pytest.fixture
def sandbox_price(exchange_sandbox: Any) -> Any:
    """The sandbox's BTC/USD last trade now; the market is put back there afterwards, so the
    session's other tests find their resting orders far from it as before."""
    ticker = exchange_sandbox.public("Ticker", pair="XBTUSD")["result"]
    last = Decimal(next(iter(ticker.values()))["c"][0])
    yield last
    exchange_sandbox.move_price("XBTUSD", f"{last:f}")


@pytest.fixture
def prices() -> Any:
    """The market feeder's store (mids for the P&L, the last trade for the ticket's checks)
    and no cached P&L walk from an earlier test database's organization of the same id."""
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in client.scan_iter(match="*trading:pnl:*", count=1000):
        client.delete(key)
    client.close()
    clear_market_keys()  # another test's old prices (other pairs) do not linger
    market = Prices()
    yield market
    market.clear()


def publish_mid(symbol: str, mid: Decimal) -> None:
    """A feeder's whole state of `symbol` (the desk's book reads every field), its ticker at
    `mid`, fresh."""
    pair = next(p for p in MARKET_PAIRS if p["symbol"] == symbol)
    now = time.time()
    state = {
        **_empty_state(pair),
        "ticker": {"bid": mid, "ask": mid, "last": mid},
        "stamps": {"stats": now},
        "received_at": now,
    }
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.set(state_key(symbol), dumps(state))
    client.hset(FEEDER_KEY, mapping={"heard_at": str(now)})
    client.close()


def test_the_market_moves_through_a_resting_order_and_the_desk_shows_the_fill_pnl_and_balance(
    page: Any,
    sign_in_browser: Any,
    worker: Any,
    trading_desk: TradingDesk,
    trader: Membership,
    exchange_sandbox: Any,
    commands: Any,  # noqa: F811 - the fixture
    sandbox_price: Decimal,
    prices: Prices,
) -> None:
    account = trading_desk.account
    mid = sandbox_price.quantize(Decimal("0.1"))
    publish_mid("BTC/USD", mid)
    # 3 % below the market: it rests (inside the ticket's 5 % confirmation band).
    limit = (mid * Decimal("0.97")).quantize(Decimal(1))

    commands()  # `manage.py streams`, as deployed
    eventually(lambda: subscribed_by(account.pk), timeout=60)

    # The streams' balance snapshot is recorded before the page is read.
    eventually(lambda: AccountBalance.objects.filter(account=account, asset="BTC").exists())
    device = totp_device_create(user=trader.user, name="Authenticator app", confirmed=True)
    sign_in_browser(page, trader.user, device)
    page.goto(f"/o/acme/desk/?account={account.pk}&pair=BTC-USD")
    balances = page.locator(f"#desk-balances-{account.pk}")
    btc_spot = balances.locator("tr[data-asset='BTC'] td.num").first
    btc_spot.wait_for(timeout=10_000)
    assert btc_spot.inner_text() == "5"
    net = page.get_by_test_id("desk-net")
    net_before = net.inner_text()
    assert net_before == money(Decimal(0), "USD", signed=True)  # nothing traded today

    # The keyboard alone, as in the first half of the proof.
    page.get_by_label("Quantity", exact=True).focus()
    page.keyboard.type(f"{QUANTITY:f}")
    page.get_by_label("Price (or trigger)").focus()
    page.keyboard.type(f"{limit:f}")
    page.get_by_label("Buy").focus()
    page.keyboard.press("b")
    page.locator("#ticket-feedback [data-ready]").wait_for()
    page.locator("[data-send]").focus()
    page.keyboard.press("Enter")
    page.locator("[data-flash]").wait_for()
    order = Order.objects.get()
    page.locator(f"#desk-open-{account.pk} [data-order='{order.pk}'][data-state='open']").wait_for(
        timeout=30_000
    )
    assert not ExchangeFill.objects.exists()
    order.refresh_from_db()  # read when the ticket answered: before the worker sent it
    assert order.txid

    # Another participant sells through the bid: the market trades below the order's price.
    exchange_sandbox.move_price("XBTUSD", f"{limit - 50:f}")

    # It leaves the open orders, live.
    page.locator(f"#desk-open-{account.pk} [data-order='{order.pk}']").wait_for(
        state="detached", timeout=30_000
    )
    fill = eventually(lambda: ExchangeFill.objects.filter(order_txid=order.txid).first())
    assert fill.qty == QUANTITY
    assert fill.price <= limit
    # The fill, in the desk's panel of today's fills (none were listed before).
    fills = page.get_by_test_id("desk-fills").locator("li")
    fills.first.wait_for(timeout=30_000)
    assert fills.count() == 1
    assert "Buy" in fills.first.inner_text()
    assert "BTC/USD" in fills.first.inner_text()
    # The balance: 0.01 BTC more (less any fee Kraken took in BTC).
    btc_fee = sum(
        (Decimal(str(f["qty"])) for f in fill.fees if f.get("asset") in ("XBT", "XXBT", "BTC")),
        Decimal(0),
    )
    expected_btc = Decimal(5) + QUANTITY - btc_fee
    eventually(lambda: btc_spot.inner_text() == f"{expected_btc.normalize():f}", timeout=30)
    # Today's P&L: the new lot valued at the feed's mid, less the fee (paid in USD here).
    usd_fee = sum(
        (Decimal(str(f["qty"])) for f in fill.fees if f.get("asset") in ("USD", "ZUSD")),
        Decimal(0),
    )
    expected_net = (mid - fill.price) * QUANTITY - usd_fee - btc_fee * fill.price
    expected = money(expected_net, "USD", signed=True)
    try:
        eventually(lambda: net.inner_text() == expected, timeout=30)
    except pytest.fail.Exception:
        pytest.fail(
            f"today's P&L shows {net.inner_text()!r}, not {expected!r} (mid {mid}, fill "
            f"{fill.price} x {fill.qty}, fees {fill.fees})"
        )
    assert expected != net_before
    assert Order.objects.get(pk=order.pk).state == OrderState.FILLED
    assert page.console_errors == [], "\n".join(page.console_errors)  # type: ignore[attr-defined]
