"""Chromium: a treasurer allocates SOL to a bonded strategy and watches the request go pending,
then bonding, then done, live, on a page that never reloads; then deallocates it and watches it
unbond and finish once the sandbox clock is fast-forwarded. Real portal server, real worker, real
sandbox."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.accounts.services import totp_device_create
from apps.approvals.policies import policy_for, policy_tiers_replace
from apps.approvals.registry import TierSpec
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.staking import services
from apps.staking.models import StakeRequest
from tests.plugins.celery_worker import CeleryWorker
from tests.staking.conftest import DAY, SOL_BONDED, EarnDesk, worker_environment

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.fixture
def portal_server_env(sandbox: Any) -> dict[str, str]:
    return worker_environment(sandbox)


def _no_approval(owner: Membership) -> None:
    for kind in (services.KIND_ALLOCATE, services.KIND_DEALLOCATE):
        policy_tiers_replace(
            policy_for(org=owner.org, kind=kind), [TierSpec(Decimal(10**12), 1, (Role.OWNER,))]
        )


def _ask(page: Any, desk: EarnDesk, direction: str, amount: str) -> None:
    page.goto(
        f"/o/acme/staking/requests/new/?account={desk.account.pk}&strategy={SOL_BONDED}"
        f"&direction={direction}"
    )
    page.get_by_label("Amount (in the strategy's asset)").fill(amount)
    page.get_by_role("button", name="Send").click()
    page.wait_for_url("**/o/acme/staking/")


def test_allocate_then_deallocate_a_bonded_strategy_live(
    page: Any,
    sign_in_browser: Any,
    owner: Membership,
    treasurer: Membership,
    desk: EarnDesk,
    earn_prices: None,
    staking_worker: CeleryWorker,
    earn_sandbox: Any,
) -> None:
    _no_approval(owner)
    # Kraken takes ten (simulated) seconds to process each call: long enough to watch. (The
    # request often turns pending before the page's socket has opened: the page reads its live
    # regions again when it opens, so that state is not missed.)
    earn_sandbox.configure(earn_delay=10)
    device = totp_device_create(user=treasurer.user, name="Authenticator app", confirmed=True)
    sign_in_browser(page, treasurer.user, device)

    _ask(page, desk, "allocate", "2")
    row = StakeRequest.objects.get(direction="allocate")
    card = page.locator(f"#stake-request-{row.pk}")
    page.evaluate("window.__samePage = true")
    card.locator('[data-status="pending"]').wait_for(timeout=15_000)
    card.locator('[data-status="bonding"]').wait_for(timeout=20_000)
    assert "Bonding until" in card.inner_text()
    earn_sandbox.advance(DAY + 60)
    card.locator('[data-status="done"]').wait_for(timeout=20_000)
    holding = page.locator(f'tr[data-holding="{SOL_BONDED}"] [data-field="allocated"]')
    holding.wait_for()
    assert holding.inner_text().startswith("2")
    assert page.evaluate("window.__samePage") is True  # all of it live, no reload

    _ask(page, desk, "deallocate", "2")
    out = StakeRequest.objects.get(direction="deallocate")
    card = page.locator(f"#stake-request-{out.pk}")
    page.evaluate("window.__samePage = true")
    card.locator('[data-status="unbonding"]').wait_for(timeout=20_000)
    assert "Unbonding until" in card.inner_text()
    earn_sandbox.advance(3 * DAY + 60)
    card.locator('[data-status="done"]').wait_for(timeout=20_000)
    assert page.evaluate("window.__samePage") is True
    assert page.console_errors == []
    assert Decimal(desk.look(earn_sandbox, "Balance")["SOL"]) == Decimal(100)
