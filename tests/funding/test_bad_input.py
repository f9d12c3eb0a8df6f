"""Bad input on the withdrawal form: a clear message next to the field, a 400, nothing
changed (no withdrawal, no approval request, no operation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.approvals.models import ApprovalRequest
from apps.exchange.models import Operation
from apps.funding.models import Destination, Withdrawal
from apps.orgs.models import Membership
from tests.funding.conftest import Treasury

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def post(client: Client, treasury: Treasury, **fields: Any) -> Any:
    data = {
        "account": treasury.master.pk,
        "asset": "BTC",
        "destination": treasury.destination.pk,
        "amount": "0.01",
        "memo": "",
        "request": "1",
    }
    data.update(fields)
    return client.post(f"/o/{treasury.master.org.slug}/treasury/withdrawals/new/", data)


def field_error(html: str, field: str) -> str:
    """The text of the field's error block (rendered right under the field)."""
    marker = f'id="id_{field}-errors"'
    assert marker in html, f"no error next to {field}"
    start = html.index(marker)
    return html[start : html.index("</div>", start)]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"amount": "-1"}, "amount", "must be more than zero"),
        ({"amount": "0"}, "amount", "must be more than zero"),
        ({"amount": "abc"}, "amount", "as a number"),
        ({"amount": "0.00000000001"}, "amount", "at most 10 decimals"),
        ({"amount": "1000"}, "amount", "Above what can be withdrawn now"),
        ({"amount": "0.0001"}, "amount", "minimum withdrawal"),
        ({"asset": "NOPE"}, "asset", "no asset called"),
        ({"asset": "ETH"}, "destination", "receives BTC, not ETH"),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_changes_nothing(
    treasury: Treasury,
    treasurer: Membership,
    client_for: Callable[[Membership], Client],
    fields: dict[str, str],
    field: str,
    message: str,
) -> None:
    response = post(client_for(treasurer), treasury, **fields)
    assert response.status_code == 400
    assert message in field_error(response.content.decode(), field)
    assert not Withdrawal.objects.exists()
    assert not ApprovalRequest.objects.exists()
    assert not Operation.objects.exists()


def test_a_destination_not_allow_listed_cannot_be_chosen(
    treasury: Treasury, treasurer: Membership, client_for: Callable[[Membership], Client]
) -> None:
    pending = Destination.objects.create(
        org=treasurer.org,
        account=treasury.master,
        asset="XBT",
        key="pending-key",
        address="bc1qpending",
        status=Destination.Status.PENDING,
        requested_by=treasurer.user,
    )
    response = post(client_for(treasurer), treasury, destination=pending.pk)
    assert response.status_code == 400
    assert "Choose an allow-listed destination" in field_error(
        response.content.decode(), "destination"
    )
    assert not Withdrawal.objects.exists()


def test_a_good_request_shows_krakens_preview_then_creates_one_withdrawal(
    treasury: Treasury, treasurer: Membership, client_for: Callable[[Membership], Client]
) -> None:
    client = client_for(treasurer)
    preview = post(client, treasury, request="", preview="1")
    html = preview.content.decode()
    assert preview.status_code == 200
    assert 'id="withdrawal-preview"' in html
    assert "0.00015" in html  # Kraken's fee
    assert "0.00985" in html  # what arrives
    assert not Withdrawal.objects.exists()

    response = post(client, treasury)
    withdrawal = Withdrawal.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"/treasury/withdrawals/{withdrawal.pk}/")
