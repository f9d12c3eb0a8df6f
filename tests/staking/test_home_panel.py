"""Staking's panel on the organization's home (issue 14 §1): the Earn value, the requests under
way, rewards today and what waits on the member, by role, and the empty states."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.approvals.policies import policy_for, policy_tiers_replace
from apps.approvals.registry import TierSpec
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.staking import selectors, services
from apps.staking.models import RewardSnapshot, StakeRequest
from apps.staking.panels import money
from tests.conftest import verified_client
from tests.staking.conftest import DAY, DOT_FLEX, EarnDesk

pytestmark = pytest.mark.django_db

Status = StakeRequest.Status


def home(membership: Membership) -> str:
    response = verified_client(membership.user).get(f"/o/{membership.org.slug}/")
    assert response.status_code == 200
    return response.content.decode()


def panel(html: str) -> str:
    match = re.search(r'<section[^>]*data-testid="staking-panel".*?</section>', html, re.S)
    assert match, "no staking panel"
    return match.group(0)


@pytest.mark.parametrize(
    ("role", "adds_accounts"),
    [("owner", True), ("admin", True), ("treasurer", False), ("viewer", False)],
)
def test_without_an_account_the_panel_says_what_to_do_next(
    role: str, adds_accounts: bool, request: pytest.FixtureRequest
) -> None:
    membership: Membership = request.getfixturevalue(role)
    html = panel(home(membership))
    assert 'data-empty="no-accounts"' in html
    assert ("Add your Kraken account" in html) is adds_accounts
    assert ("Ask an owner or admin" in html) is not adds_accounts


@pytest.mark.parametrize("role", list(Role.values))
def test_every_role_that_may_view_sees_the_panel_and_only_requesters_are_asked_to_allocate(
    role: str, desk: EarnDesk, request: pytest.FixtureRequest
) -> None:
    membership: Membership = request.getfixturevalue(role)
    html = panel(home(membership))
    assert 'data-empty="no-holdings"' in html
    can_request = role in ("owner", "treasurer")
    assert ("/staking/requests/new/" in html) is can_request
    assert ("A treasurer or owner allocates" in html) is not can_request


def test_an_outsider_sees_no_organizations_panel(outsider: Membership, desk: EarnDesk) -> None:
    response = verified_client(outsider.user).get(f"/o/{desk.account.org.slug}/")
    assert response.status_code == 404


def test_the_panel_shows_value_requests_rewards_today_and_what_waits_on_whom(
    desk: EarnDesk,
    owner: Membership,
    treasurer: Membership,
    approver: Membership,
    viewer: Membership,
    earn_sandbox: Any,
    earn_prices: None,
) -> None:
    # Held since yesterday (allocated outside the portal), and snapshotted before today began.
    desk.look(earn_sandbox, "Earn/Allocate", {"strategy_id": DOT_FLEX, "amount": "100"})
    earn_sandbox.advance(5)
    RewardSnapshot.objects.create(
        account=desk.account,
        strategy_id=DOT_FLEX,
        asset="DOT",
        taken_at=timezone.localtime().replace(hour=0, minute=0, second=0) - timedelta(hours=1),
        allocated=Decimal(100),
        rewarded=Decimal(0),
        price=None,
    )
    earn_sandbox.advance(DAY)  # a day of rewards
    # Two requests under way (one sending, one bonding) and one awaiting approval.
    first, _ = services.stake_request_create(
        membership=treasurer,
        account=desk.account,
        strategy_id=DOT_FLEX,
        direction="allocate",
        amount=Decimal(3),
    )
    assert first.status == Status.SENDING
    second, _ = services.stake_request_create(
        membership=owner,
        account=desk.account,
        strategy_id=DOT_FLEX,
        direction="allocate",
        amount=Decimal(4),
    )
    StakeRequest.objects.filter(pk=second.pk).update(status=Status.BONDING)
    for kind in (services.KIND_ALLOCATE, services.KIND_DEALLOCATE):
        policy_tiers_replace(
            policy_for(org=owner.org, kind=kind), [TierSpec(Decimal(0), 1, (Role.APPROVER,))]
        )
    third, _ = services.stake_request_create(
        membership=treasurer,
        account=desk.account,
        strategy_id=DOT_FLEX,
        direction="allocate",
        amount=Decimal(5),
    )
    assert third.status == Status.AWAITING_APPROVAL

    overview = selectors.overview(org=owner.org)
    (position,) = overview.positions
    assert position.price is not None
    assert position.holding.rewarded > 0

    html = panel(home(viewer))
    assert f'data-value="{overview.total_value}"' in html
    assert money(overview.total_value, "USD") in html
    # Rewards today: all of them (none before today), at today's price.
    rewards = panel(home(viewer)).split('data-testid="staking-rewards-today">')[1]
    assert rewards.startswith(money(position.holding.rewarded * position.price, "USD"))
    assert "(partial)" not in rewards.split("</td>")[0]
    assert '<span class="num" data-count="pending">1</span>' in html
    assert '<span class="num" data-count="bonding">1</span>' in html
    assert '<span class="num" data-count="unbonding">0</span>' in html
    assert "staking-waiting-approval" not in html
    assert "staking-mine-queued" not in html
    # The approver has one to decide; the treasurer has one waiting.
    approver_html = panel(home(approver))
    assert "1 staking request waiting for your approval" in approver_html
    treasurer_html = panel(home(treasurer))
    assert "staking-waiting-approval" not in treasurer_html
    assert "1 of your requests is waiting" in treasurer_html


def test_a_holding_never_snapshotted_before_today_makes_rewards_today_partial(
    desk: EarnDesk, viewer: Membership, earn_sandbox: Any, earn_prices: None
) -> None:
    desk.look(earn_sandbox, "Earn/Allocate", {"strategy_id": DOT_FLEX, "amount": "100"})
    earn_sandbox.advance(DAY)
    html = panel(home(viewer))
    rewards = html.split('data-testid="staking-rewards-today">')[1].split("</td>")[0]
    assert rewards.startswith("0.00 USD")  # its rewards so far are not today's
    assert "(partial)" in rewards
