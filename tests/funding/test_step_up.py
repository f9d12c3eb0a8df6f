"""The treasury's writes ask for a fresh second factor (as staking and schedules do): a
withdrawal or transfer request, allow-listing or removing an address, a new deposit address.
A session whose last confirmation is old is sent to the step-up page, nothing is written,
and what was typed is back on the form afterwards."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.services import STEP_UP_SESSION_KEY
from apps.approvals.models import ApprovalRequest
from apps.funding.models import Destination, Transfer, Withdrawal
from apps.orgs.models import Membership
from tests.approvals.conftest import stepped_up_client
from tests.conftest import verified_client
from tests.funding.conftest import Treasury

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def stale_client(membership: Membership) -> Client:
    client = verified_client(membership.user)
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time() - 3600  # confirmed an hour ago
    session.save()
    return client


def url(treasury: Treasury, path: str) -> str:
    return f"/o/{treasury.master.org.slug}/treasury/{path}"


def confirm(client: Client) -> None:
    """What the step-up page records once the code is right."""
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()


def asks_step_up(response: Any) -> None:
    assert response.status_code == 302, response.status_code
    assert reverse("accounts:step-up") in response["Location"]


def test_a_withdrawal_request_asks_for_a_fresh_step_up_and_keeps_the_form(
    treasury: Treasury, treasurer: Membership
) -> None:
    client = stale_client(treasurer)
    fields = {
        "account": treasury.master.pk,
        "asset": "BTC",
        "destination": treasury.destination.pk,
        "amount": "0.01",
        "memo": "rent",
        "request": "1",
    }
    asks_step_up(client.post(url(treasury, "withdrawals/new/"), fields))
    assert not Withdrawal.objects.exists()
    assert not ApprovalRequest.objects.exists()
    # A preview is only a read: no step-up.
    preview = client.post(url(treasury, "withdrawals/new/"), fields | {"preview": "1"})
    assert preview.status_code == 200
    confirm(client)
    back = client.get(url(treasury, "withdrawals/new/")).content.decode()
    assert 'value="0.01"' in back
    assert 'value="rent"' in back
    assert "What you typed is back" in back
    done = client.post(url(treasury, "withdrawals/new/"), fields)
    assert done.status_code == 302
    assert Withdrawal.objects.count() == 1


def test_a_transfer_request_asks_for_a_fresh_step_up_and_keeps_the_form(
    treasury: Treasury, treasurer: Membership
) -> None:
    client = stale_client(treasurer)
    fields = {
        "from_account": treasury.master.pk,
        "to_account": treasury.sub.pk,
        "asset": "BTC",
        "amount": "0.1",
        "memo": "ops float",
    }
    asks_step_up(client.post(url(treasury, "transfers/"), fields))
    assert not Transfer.objects.exists()
    confirm(client)
    back = client.get(url(treasury, "transfers/")).content.decode()
    assert 'value="0.1"' in back
    assert 'value="ops float"' in back
    assert client.post(url(treasury, "transfers/"), fields).status_code == 302
    assert Transfer.objects.count() == 1


def test_allow_listing_and_removing_an_address_ask_for_a_fresh_step_up(
    treasury: Treasury, treasurer: Membership
) -> None:
    client = stale_client(treasurer)
    asks_step_up(
        client.post(
            url(treasury, "addresses/request/"),
            {"account": treasury.master.pk, "asset": "XBT", "key": "other", "label": "x"},
        )
    )
    assert Destination.objects.count() == 1
    asks_step_up(client.post(url(treasury, f"addresses/{treasury.destination.pk}/remove/")))
    treasury.destination.refresh_from_db()
    assert treasury.destination.status == Destination.Status.ALLOWED
    fresh = stepped_up_client(treasurer)
    fresh.post(url(treasury, f"addresses/{treasury.destination.pk}/remove/"))
    treasury.destination.refresh_from_db()
    assert treasury.destination.status == Destination.Status.REMOVED


def test_a_new_deposit_address_asks_for_a_fresh_step_up(
    treasury: Treasury, treasurer: Membership
) -> None:
    client = stale_client(treasurer)
    fields = {"account": treasury.master.pk, "asset": "BTC", "method": "Bitcoin"}
    asks_step_up(client.post(url(treasury, "deposits/"), fields))
    confirm(client)
    back = client.get(url(treasury, "deposits/"))
    assert back.status_code == 200
    assert "What you typed is back" in back.content.decode()
