"""End to end with the platform's private streams: another client buys on the account against
the sandbox, the streams record the order and its fills, and a member watching the fills
blotter in Chromium sees them appear, marked external, without reloading."""

from __future__ import annotations

from typing import Any

import pytest

from apps.exchange.models import ExchangeFill
from apps.exchange.streams.hooks import stream_hook_register
from apps.orgs.permissions import Role
from apps.trading import live_blotter
from tests.exchange.conftest import (  # noqa: F401 (fixtures used by name)
    Reader,
    eventually,
    exchange_sandbox,
    reader,
    run_streams,
    streams_settings,
)
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.plugins.browser import PortalServer
from tests.vault.conftest import KEK_1

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture
def portal_server_env() -> dict[str, str]:
    return {"PORTAL_KEYRING": f"k1:{KEK_1}"}


def test_a_fill_recorded_by_the_streams_appears_on_the_fills_blotter_live(
    page: Any,
    portal_server: PortalServer,
    reader: Reader,  # noqa: F811
    run_streams: Any,  # noqa: F811
    owner: Any,
    exchange_sandbox: Any,  # noqa: F811
) -> None:
    org = owner.org
    org.require_2fa = False
    org.save(update_fields=["require_2fa"])
    viewer = MembershipFactory(org=org, role=Role.VIEWER, user=UserFactory(email="v@acme.test"))
    # As the trading app's ready() registers them (run_streams isolates the registry).
    stream_hook_register(on_order=live_blotter._order_changed, on_fill=live_blotter._fill_recorded)
    streams = run_streams()
    streams.wait_subscribed(reader.account.pk)

    page.goto("/o/acme/desk/blotter/fills/")
    page.get_by_label("Email").fill(viewer.user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/o/acme/desk/blotter/fills/")
    page.get_by_text("No fills match.").wait_for()
    page.wait_for_timeout(500)  # the member socket connects

    result = reader.direct(
        exchange_sandbox,
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.01"},
    )
    txid = result["txid"][0]
    fill = eventually(
        lambda: ExchangeFill.objects.filter(account=reader.account, order_txid=txid).first()
    )

    page.locator(f'[data-row="fill-{fill.pk}"]').wait_for(timeout=20_000)
    row = page.locator(f'[data-row="fill-{fill.pk}"]')
    assert "External" in row.inner_text()
    assert "BTC/USD" in row.inner_text()
    assert page.console_errors == []  # type: ignore[attr-defined]
