"""Chromium: a treasurer requests a withdrawal above the one-approver tier; two approvers
approve it with a TOTP step-up each; the portal sends it (a real Celery worker, the Kraken
sandbox) and the requester's open page follows it live to Success without a reload."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections

from apps.accounts.services import totp_device_create
from apps.approvals.models import ApprovalRequest
from apps.funding.models import Withdrawal
from apps.funding.services import withdrawals_follow
from apps.orgs.models import Membership
from tests.accounts.otp import totp_code
from tests.approvals.test_browser import age_step_up, new_page
from tests.funding.conftest import PRICES, Treasury, set_prices
from tests.plugins.celery_worker import sandbox_environment
from tests.vault.conftest import KEK_1

pytestmark = pytest.mark.browser


@pytest.fixture
def portal_server_env(sandbox: Any) -> dict[str, str]:
    return {
        **sandbox_environment(sandbox),
        "PORTAL_KEYRING": f"k1:{KEK_1}",
        "KRAKEN_TIER": "pro",
        # The prices the test writes stay current for the whole test.
        "MARKET_PRICE_MAX_AGE": "900",
    }


@pytest.fixture
def treasury_worker(_celery_worker_pool: Any, portal_server_env: dict[str, str]) -> Any:
    return _celery_worker_pool.get(dict(portal_server_env))


def follow_in_thread() -> int:
    try:
        return withdrawals_follow()
    finally:
        connections.close_all()


def approve_with_totp(
    page: Any, portal_server: Any, sign_in: Any, member: Membership, url: str
) -> None:
    device = totp_device_create(user=member.user, name="Authenticator app", confirmed=True)
    other = new_page(page, portal_server)
    sign_in(other, member.user, device)
    age_step_up(other)
    other.goto(url)
    other.get_by_role("button", name="Approve").click()
    other.wait_for_url("**/accounts/step-up/**")
    other.get_by_label("Authentication code").fill(totp_code(device))
    other.get_by_role("button", name="Confirm").click()
    other.wait_for_url("**/approvals/*/")
    other.get_by_role("button", name="Approve").click()
    other.get_by_text("Your decision was recorded.").wait_for()
    assert other.console_errors == [], other.console_errors


def test_a_withdrawal_requested_approved_twice_with_totp_is_sent_and_followed_live(
    page: Any,
    portal_server: Any,
    sign_in_browser: Any,
    treasury_worker: Any,
    treasury: Treasury,
    treasurer: Membership,
    approver: Membership,
    owner: Membership,
    exchange_sandbox: Any,
    settings: Any,
) -> None:
    settings.MARKET_PRICE_MAX_AGE = 900
    set_prices(PRICES)
    device = totp_device_create(user=treasurer.user, name="Authenticator app", confirmed=True)
    sign_in_browser(page, treasurer.user, device)
    page.goto("/o/acme/treasury/withdrawals/new/")
    page.locator("#id_account").select_option(str(treasury.master.pk))
    page.locator("#id_asset").fill("BTC")
    page.locator("#id_destination").select_option(str(treasury.destination.pk))
    page.locator("#id_amount").fill("0.5")  # 25,000 USD: two approvals
    page.get_by_role("button", name="Preview").click()
    page.locator("#withdrawal-preview").get_by_text("0.00015").first.wait_for()
    # The sign-in's confirmation is old by now: the request asks for a fresh code, and the
    # form comes back as it was typed.
    age_step_up(page)
    page.get_by_role("button", name="Request withdrawal").click()
    page.wait_for_url("**/accounts/step-up/**")
    page.get_by_label("Authentication code").fill(totp_code(device))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/treasury/withdrawals/new/")
    assert page.locator("#id_amount").input_value() == "0.5"
    assert not Withdrawal.objects.exists()
    page.get_by_role("button", name="Request withdrawal").click()
    page.wait_for_url("**/treasury/withdrawals/*/")
    withdrawal = Withdrawal.objects.get()
    card = page.locator(f"#withdrawal-{withdrawal.pk}")
    card.locator('[data-withdrawal-status="awaiting_approval"]').wait_for()
    page.evaluate("window.__samePage = true")
    approval = ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0)
    assert approval.required_approvals == 2

    url = f"/o/acme/approvals/{approval.pk}/"
    approve_with_totp(page, portal_server, sign_in_browser, approver, url)
    approval.refresh_from_db()
    assert approval.status == "pending"  # one of two
    approve_with_totp(page, portal_server, sign_in_browser, owner, url)

    # Approved: the server prepares the operation, the worker sends it once, and the
    # requester's page shows Kraken's reference without a reload.
    card.locator('[data-withdrawal-status="processing"]').wait_for(timeout=30_000)
    withdrawal.refresh_from_db()
    assert withdrawal.refid
    card.get_by_text(withdrawal.refid).wait_for()

    exchange_sandbox.advance(60)  # Kraken processes it
    # What the beat does every few seconds, in a thread of its own: Playwright's loop runs in
    # this one, and publishing to the channel layer from a thread with a running loop fails.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(follow_in_thread).result() >= 1
    card.locator('[data-withdrawal-status="success"]').wait_for()
    assert page.evaluate("window.__samePage") is True
    on_kraken = treasury.desk.look(exchange_sandbox, "WithdrawStatus", {"asset": "XBT"})
    assert [w["refid"] for w in on_kraken] == [withdrawal.refid]
    assert page.console_errors == [], page.console_errors
