"""Every treasury view: wrong method, anonymous, outsider (404), too-low role (403), the normal
case; balances with their value, the value chart's CSV, deposits with a QR code rendered on the
server, the address book with Kraken's keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.exchange.models import AccountBalance, BalanceSnapshot, LedgerEntry
from apps.exchange.services import balances_refresh
from apps.exchange.snapshots import balance_snapshots_take
from apps.funding.deposits import on_ledger_entry
from apps.notifications.models import Notification
from apps.orgs.models import Membership
from tests.funding.conftest import Treasury

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]

PAGES = ["", "withdrawals/", "transfers/", "addresses/", "deposits/", "value.csv"]


def url(org: Any, path: str) -> str:
    return f"/o/{org.slug}/treasury/{path}"


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_a_member_of_this_organization(
    treasury: Treasury,
    outsider: Membership,
    client_for: Callable[[Membership], Client],
    path: str,
) -> None:
    org = treasury.master.org
    anonymous = Client().get(url(org, path))
    assert anonymous.status_code == 302
    assert "/accounts/" in anonymous["Location"]
    assert client_for(outsider).get(url(org, path)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", ""),
        ("post", "withdrawals/"),
        ("get", "addresses/request/"),
        ("get", "addresses/1/remove/"),
        ("get", "withdrawals/1/cancel/"),
        ("get", "accounts/1/refresh/"),
    ],
)
def test_wrong_methods_are_refused(
    treasury: Treasury,
    treasurer: Membership,
    client_for: Callable[[Membership], Client],
    method: str,
    path: str,
) -> None:
    response = getattr(client_for(treasurer), method)(url(treasury.master.org, path))
    assert response.status_code == 405


def test_roles_that_cannot_request_funding_get_403(
    treasury: Treasury,
    viewer: Membership,
    approver: Membership,
    client_for: Callable[[Membership], Client],
) -> None:
    org = treasury.master.org
    for member in (viewer, approver):
        client = client_for(member)
        assert client.get(url(org, "withdrawals/new/")).status_code == 403
        assert client.post(url(org, "addresses/request/"), {}).status_code == 403
        assert client.post(url(org, "transfers/"), {}).status_code == 403
        assert client.post(url(org, "deposits/"), {"asset": "BTC"}).status_code == 403


def test_balances_show_each_account_and_the_total_valued_with_the_prices_age(
    treasury: Treasury, viewer: Membership, client_for: Callable[[Membership], Client]
) -> None:
    balances_refresh(account=treasury.master)
    html = client_for(viewer).get(url(treasury.master.org, "")).content.decode()
    assert f'id="balances-account-{treasury.master.pk}"' in html
    assert 'id="treasury-total"' in html
    # 5 BTC at 50,000 + 500,000 USD + 10 ETH at 3,000 + 1,000 DOT at 5 = 785,000 USD.
    assert 'data-total-value="785000' in html
    assert "s old" in html


def test_the_value_chart_reads_snapshots_and_exports_csv(
    treasury: Treasury, viewer: Membership, client_for: Callable[[Membership], Client]
) -> None:
    balances_refresh(account=treasury.master)
    # Exchange's hourly snapshots: one taken two hours ago, one now.
    assert balance_snapshots_take() > 0
    BalanceSnapshot.objects.update(taken_at=timezone.now() - timedelta(hours=2))
    assert balance_snapshots_take() > 0
    client = client_for(viewer)
    page = client.get(url(treasury.master.org, "?range=24h")).content.decode()
    assert 'id="value-data"' in page
    assert page.count('"time":') == 2
    csv = client.get(url(treasury.master.org, "value.csv?range=24h"))
    assert csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().strip().splitlines()
    assert lines[0].startswith("time (UTC),total value (USD)")
    assert len(lines) == 3
    assert lines[1].split(",")[1].startswith("785000")
    assert BalanceSnapshot.objects.filter(price__isnull=True).count() == 0


def test_deposits_show_methods_an_address_as_a_server_rendered_qr_code_and_a_new_one(
    treasury: Treasury,
    treasurer: Membership,
    client_for: Callable[[Membership], Client],
    exchange_sandbox: Any,
) -> None:
    client = client_for(treasurer)
    org = treasury.master.org
    page = client.get(
        url(org, f"deposits/?account={treasury.master.pk}&asset=BTC")
    ).content.decode()
    assert "BTC by Bitcoin" in page
    assert page.count("<svg") >= 1
    assert 'aria-label="QR code of bc1q' in page
    first = page.count("data-address=")
    exchange_sandbox.deposit(treasury.desk.account_id, "XBT", "0.5")
    again = client.post(
        url(org, "deposits/"), {"account": treasury.master.pk, "asset": "BTC", "method": "Bitcoin"}
    ).content.decode()
    assert again.count("data-address=") == first + 1
    assert "Success" in again  # the deposit in the history


def test_a_deposit_in_the_ledger_is_announced_and_notified(
    treasury: Treasury, treasurer: Membership, approver: Membership, viewer: Membership
) -> None:
    entry = LedgerEntry.objects.create(
        account=treasury.master,
        ledger_id="LDEPOSIT-1",
        refid="QDEP-1",
        type="deposit",
        asset="BTC",
        amount=Decimal("0.5"),
        booked_at=timezone.now(),
    )
    on_ledger_entry(entry)
    told = set(
        Notification.objects.filter(kind="funding.deposit").values_list("recipient_id", flat=True)
    )
    assert {treasurer.user_id, approver.user_id} <= told
    assert viewer.user_id not in told


def test_the_address_book_lists_krakens_keys_beside_the_allow_list(
    treasury: Treasury,
    viewer: Membership,
    client_for: Callable[[Membership], Client],
    exchange_sandbox: Any,
) -> None:
    exchange_sandbox.add_withdraw_address(treasury.desk.account_id, "ETH", "eth-cold", "0xabc")
    html = client_for(viewer).get(url(treasury.master.org, "addresses/")).content.decode()
    assert f'id="destination-{treasury.destination.pk}"' in html
    assert 'data-kraken-key="eth-cold"' in html
    assert "Request allow-listing" not in html  # a viewer cannot request
    assert AccountBalance.objects.count() >= 0


def test_a_viewers_balance_refresh_reads_kraken_at_most_once_in_30_seconds(
    treasury: Treasury,
    viewer: Membership,
    client_for: Callable[[Membership], Client],
    exchange_sandbox: Any,
) -> None:
    from django.core.cache import cache

    from apps.exchange.balances import spendable

    cache.delete(f"funding:balances-refreshed:{treasury.master.pk}")  # an earlier test's account
    client = client_for(viewer)
    path = url(treasury.master.org, f"accounts/{treasury.master.pk}/refresh/")
    first = client.post(path, follow=True)
    assert "Balances read from Kraken." in first.content.decode()
    assert spendable(account=treasury.master, asset="BTC") == Decimal(5)
    # Kraken's balance moves; a second refresh right away does not read it (throttled).
    exchange_sandbox.deposit(treasury.desk.account_id, "XBT", "1")
    second = client.post(path, follow=True)
    assert second.status_code == 200
    assert "less than 30 seconds ago" in second.content.decode()
    assert spendable(account=treasury.master, asset="BTC") == Decimal(5)
