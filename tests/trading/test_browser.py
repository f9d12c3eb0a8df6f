"""Real Chromium against the real ASGI server, a real Celery worker and the sandbox: a trader
places a limit order with the keyboard alone and sees it open live, amends one and cancels
another; an owner hits the kill switch and the trader's desk shows the halt at once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from apps.accounts.services import totp_device_create
from apps.exchange.models import Kind, Operation, State
from apps.orgs.models import Membership
from apps.trading import services
from apps.trading.models import Order, OrderState
from tests.plugins.celery_worker import sandbox_environment
from tests.trading.conftest import TradingDesk, limit_ticket
from tests.vault.conftest import KEK_1

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture
def portal_server_env(sandbox: Any) -> dict[str, str]:
    return {**sandbox_environment(sandbox), "PORTAL_KEYRING": f"k1:{KEK_1}"}


@pytest.fixture
def worker(_celery_worker_pool: Any, sandbox: Any) -> Any:
    return _celery_worker_pool.get(
        {**sandbox_environment(sandbox), "PORTAL_KEYRING": f"k1:{KEK_1}", "KRAKEN_TIER": "pro"}
    )


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_a_trader_places_amends_and_cancels_and_sees_the_kill_switch_halt_the_desk(
    page: Any,
    sign_in_browser: Any,
    worker: Any,
    trading_desk: TradingDesk,
    trader: Membership,
    owner: Membership,
    exchange_sandbox: Any,
    market_keys: Any,  # an empty market store: another test's old prices do not linger
) -> None:
    device = totp_device_create(user=trader.user, name="Authenticator app", confirmed=True)
    sign_in_browser(page, trader.user, device)
    page.goto(f"/o/acme/desk/?account={trading_desk.account.pk}&pair=BTC-USD")
    account = trading_desk.account.pk

    # The keyboard alone: type in the fields; S then B choose the side only outside them.
    page.get_by_label("Quantity", exact=True).focus()
    page.keyboard.type("0.01")
    page.keyboard.press("Tab")  # the base/quote choice
    page.get_by_label("Price (or trigger)").focus()
    page.keyboard.type("1000")
    assert page.get_by_label("Price (or trigger)").input_value() == "1000"  # no "b" typed
    page.get_by_label("Buy").focus()
    page.keyboard.press("s")
    assert page.get_by_label("Sell").is_checked()
    page.keyboard.press("b")
    assert page.get_by_label("Buy").is_checked()
    try:
        page.locator("#ticket-feedback [data-ready]").wait_for()
    except PlaywrightTimeoutError:
        pytest.fail(f"the ticket is not ready: {page.locator('#ticket-feedback').inner_html()}")
    # Enter in a field reviews, it never sends.
    page.get_by_label("Price (or trigger)").focus()
    page.keyboard.press("Enter")
    page.locator("#ticket-feedback [data-ready]").wait_for()
    assert not Order.objects.exists()
    # Sending is its own control, reached with Tab.
    page.locator("[data-send]").focus()
    page.keyboard.press("Enter")
    page.locator("[data-flash]").wait_for()
    first = Order.objects.get()
    # It shows open, live (the worker's result hook publishes it).
    page.locator(f"#desk-open-{account} [data-order='{first.pk}'][data-state='open']").wait_for(
        timeout=30_000
    )

    # A second order, to cancel from the desk.
    second = services.order_submit(
        membership=trader, ticket=limit_ticket(trading_desk.account, price="1100")
    )
    wait_for(lambda: Order.objects.get(pk=second.pk).state == OrderState.OPEN, "the second order")
    page.reload()
    page.locator(f"#desk-order-{second.pk} [data-cancel]").click()
    page.locator(f"#desk-order-{second.pk}[data-state='canceled']").wait_for(timeout=30_000)

    # Amend the first on its page.
    page.goto(f"/o/acme/desk/orders/{first.pk}/")
    page.get_by_label("New price").fill("1001")
    page.get_by_role("button", name="Amend order").click()
    wait_for(
        lambda: Operation.objects.filter(kind=Kind.AMEND_ORDER, state=State.DONE).exists(),
        "the amend",
    )
    wait_for(lambda: Order.objects.get(pk=first.pk).price == 1001, "the amended price")
    page.reload()
    page.get_by_text("Amended on Kraken").wait_for()

    # The owner halts trading in their own browser; the trader's desk shows it live.
    page.goto(f"/o/acme/desk/?account={account}&pair=BTC-USD")
    owner_context = page.context.browser.new_context(base_url=page.url.split("/o/")[0])
    owner_page = owner_context.new_page()
    owner_device = totp_device_create(user=owner.user, name="Authenticator app", confirmed=True)
    sign_in_browser(owner_page, owner.user, owner_device)  # a fresh sign-in counts as step-up
    owner_page.goto("/o/acme/desk/kill-switch/")
    owner_page.get_by_label("Also cancel every open order").check()
    owner_page.get_by_label("I confirm: halt trading for the organization").check()
    owner_page.get_by_role("button", name="Halt trading").click()
    owner_page.get_by_text("Trading is halted").first.wait_for()
    owner_context.close()

    page.locator("#desk-halt [data-halted='true']").wait_for(timeout=15_000)
    page.locator(f"#desk-open-{account} [data-order='{first.pk}']").wait_for(
        state="detached", timeout=30_000
    )
    assert Order.objects.get(pk=first.pk).state == OrderState.CANCELED
    assert trading_desk.look(exchange_sandbox, "OpenOrders")["open"] == {}
    assert page.console_errors == [], "\n".join(page.console_errors)  # type: ignore[attr-defined]
