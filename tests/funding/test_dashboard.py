"""The treasury panel on the organization's home (issue 14 §1): total balance and its change
today, funding activity, and the empty states."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.exchange.models import BalanceSnapshot, WalletType
from apps.exchange.services import balances_refresh
from apps.funding.services import withdrawal_request
from apps.orgs.models import Membership
from tests.funding.conftest import Treasury

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def test_without_accounts_the_panel_says_where_to_start(
    owner: Membership, client_for: Callable[[Membership], Client]
) -> None:
    html = client_for(owner).get(f"/o/{owner.org.slug}/").content.decode()
    assert 'data-testid="treasury-panel"' in html
    assert 'data-empty="no-accounts"' in html
    assert 'data-empty="no-activity"' in html


def test_the_panel_shows_the_total_its_change_today_and_the_latest_withdrawal(
    treasury: Treasury,
    treasurer: Membership,
    viewer: Membership,
    client_for: Callable[[Membership], Client],
) -> None:
    balances_refresh(account=treasury.master)
    # At the start of the day the account held 5 BTC at 40,000 and nothing else.
    BalanceSnapshot.objects.create(
        account=treasury.master,
        asset="BTC",
        wallet_type=WalletType.SPOT,
        wallet_id="main",
        quantity=Decimal(5),
        price=Decimal(40000),
        price_currency="USD",
        taken_at=timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        - timedelta(minutes=5),
    )
    withdrawal_request(
        requester=treasurer,
        account=treasury.master,
        destination=treasury.destination,
        asset="BTC",
        amount="0.01",
    )
    html = client_for(viewer).get(f"/o/{viewer.org.slug}/").content.decode()
    assert 'data-total-value="785000' in html
    assert 'data-change-today="585000' in html  # 785,000 now - 200,000 at day start
    assert "Withdrawal 0.01 XBT" in html
    assert "Waiting for approval" in html


def test_navigation_has_the_treasury(
    owner: Membership, client_for: Callable[[Membership], Client], db: Any
) -> None:
    html = client_for(owner).get(f"/o/{owner.org.slug}/").content.decode()
    assert f'href="/o/{owner.org.slug}/treasury/"' in html
