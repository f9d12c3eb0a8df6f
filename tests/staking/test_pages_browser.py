"""In Chromium: the staking overview and strategies pages, with something on them (a holding, an
open request awaiting approval, one being sent, a rewards chart), fit a 390 px phone screen
without sideways overflow or a clipped control, and pass axe-core with no serious or critical
violation at desktop and phone widths. The helpers are tests/browser's."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.approvals.policies import policy_for, policy_tiers_replace
from apps.approvals.registry import TierSpec
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.staking import services
from apps.staking.models import RewardSnapshot
from tests.browser.test_accessibility import FAILING_IMPACTS, _axe, _sign_in
from tests.browser.test_small_screens import OVERFLOW, PHONE
from tests.staking.conftest import DOT_FLEX, EarnDesk, worker_environment

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture
def portal_server_env(sandbox: Any) -> dict[str, str]:
    return worker_environment(sandbox)


@pytest.fixture
def paths(
    portal_server: Any,
    desk: EarnDesk,
    owner: Membership,
    treasurer: Membership,
    earn_sandbox: Any,
    earn_prices: None,
) -> list[str]:
    """Written before the page's Playwright loop starts."""
    desk.look(earn_sandbox, "Earn/Allocate", {"strategy_id": DOT_FLEX, "amount": "100"})
    earn_sandbox.advance(5)
    now = timezone.now()
    for hours, rewarded in ((3, "0.01"), (2, "0.02"), (1, "0.035")):
        RewardSnapshot.objects.create(
            account=desk.account,
            strategy_id=DOT_FLEX,
            asset="DOT",
            taken_at=now - timedelta(hours=hours),
            allocated=Decimal(100),
            rewarded=Decimal(rewarded),
            price=Decimal("6.5"),
            currency="USD",
        )
    services.stake_request_create(
        membership=treasurer,
        account=desk.account,
        strategy_id=DOT_FLEX,
        direction="allocate",
        amount=Decimal("2.5"),
    )
    for kind in (services.KIND_ALLOCATE, services.KIND_DEALLOCATE):
        policy_tiers_replace(
            policy_for(org=owner.org, kind=kind), [TierSpec(Decimal(0), 1, (Role.APPROVER,))]
        )
    services.stake_request_create(
        membership=treasurer,
        account=desk.account,
        strategy_id=DOT_FLEX,
        direction="deallocate",
        amount=Decimal("1.25"),
    )
    return [
        "/o/acme/staking/",
        "/o/acme/staking/strategies/",
        f"/o/acme/staking/strategies/?account={desk.account.pk}&sort=apr",
    ]


def test_the_staking_pages_fit_a_phone_and_pass_axe(
    paths: list[str], page: Any, portal_server: Any, treasurer: Membership
) -> None:
    _sign_in(page, treasurer.user, portal_server.url)
    serious: dict[str, list[str]] = {}
    overflow: dict[str, list[str]] = {}
    for width in (1400, PHONE["width"]):
        page.set_viewport_size({"width": width, "height": PHONE["height"]})
        for path in paths:
            response = page.goto(path)
            assert response is not None, path
            assert response.status == 200, path
            page.wait_for_load_state("load")
            assert page.locator("[data-holding]").count() or "strategies" in path, path
            if width == PHONE["width"] and (found := page.evaluate(OVERFLOW)):
                overflow[path] = found
            bad = [
                f"{v['id']}: {[' '.join(map(str, n['target'])) for n in v['nodes']][:3]}"
                for v in _axe(page)
                if v.get("impact") in FAILING_IMPACTS
            ]
            if bad:
                serious[f"{path} @{width}"] = bad
    assert (serious, overflow) == ({}, {})
    assert page.console_errors == [], page.console_errors
