"""A trader adds a Kraken key in Chromium, never sees the secret again, and watches the
permission check arrive without reloading (htmx polling under the strict CSP)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.services import totp_device_create
from apps.exchange.tasks import credential_check_task
from apps.vault.models import Credential
from tests.factories import master_account
from tests.vault.conftest import KEK_1

pytestmark = pytest.mark.browser


@pytest.fixture
def portal_server_env(sandbox) -> dict[str, str]:
    return {
        "PORTAL_KEYRING": f"k1:{KEK_1}",
        "KRAKEN_API_URL": sandbox.url,
        # The server's probe message goes to an in-process broker, so a real worker started by
        # another test (without this keyring) cannot take it; the test plays the worker.
        "CELERY_BROKER_URL": "memory://",
    }


def test_a_trader_adds_a_key_and_sees_its_permissions_checked(
    page: Any, portal_server, sign_in_browser, trader, sandbox, settings
) -> None:
    settings.KRAKEN_API_URL = sandbox.url
    device = totp_device_create(user=trader.user, name="Authenticator app", confirmed=True)
    master_account(trader.org)  # The organization's one account: the form preselects it.
    account = sandbox.create_account({"USD": "1000"})
    key, secret = sandbox.create_key(
        account, permissions=["query_funds", "query_open", "trade", "withdraw"]
    )
    sign_in_browser(page, trader.user, device)  # The sign-in code counts as a fresh step-up.

    page.goto("/o/acme/vault/")
    page.get_by_role("link", name="Add a key").click()
    page.get_by_label("Label").fill("Desk BTC")
    page.get_by_label("API key").fill(key)
    page.get_by_label("Private key").fill("not-a-kraken-secret")
    page.get_by_label("Intended use").select_option("trading")
    page.get_by_role("button", name="Save key").click()
    # A bad private key comes back as a field error, with the field emptied.
    assert page.get_by_text("This does not look like a Kraken private key").is_visible()
    assert page.get_by_label("Private key").input_value() == ""
    assert page.get_by_label("API key").input_value() == key

    page.get_by_label("Private key").fill(secret)
    page.get_by_role("button", name="Save key").click()
    page.wait_for_url("**/o/acme/vault/*/")
    assert page.get_by_text("Testing the connection…").is_visible()
    assert secret not in page.content()

    # Play the worker: run the probe task the page is waiting for.
    credential = Credential.objects.get(owner=trader)
    credential_check_task(credential.pk)

    # htmx polls the permissions panel and swaps in the result, no reload. A trading key that
    # can withdraw is refused (the organization does not accept over-privileged keys), and the
    # panel says why.
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REFUSED
    page.get_by_text(credential.status_reason).wait_for()
    assert page.get_by_role("row", name="Create & modify orders granted").is_visible()
    assert page.get_by_role("row", name="Query ledger entries not granted").is_visible()
    assert secret not in page.content()

    page.goto("/o/acme/vault/")
    assert page.get_by_role("cell", name=credential.masked_key).is_visible()
    assert page.get_by_text("refused", exact=True).is_visible()
    assert key not in page.content()
    assert page.console_errors == []  # type: ignore[attr-defined]
