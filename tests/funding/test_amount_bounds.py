"""Huge or odd amounts on a transfer (no balances recorded, so no balance check bounds them):
always a field error next to the amount, never the database's overflow (a 500)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.approvals.models import ApprovalRequest
from apps.funding.models import Transfer
from apps.funding.services import transfer_request
from apps.orgs.models import Membership
from tests.funding.conftest import Treasury

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]

huge = st.one_of(
    st.integers(min_value=10**15, max_value=10**40).map(str),
    st.decimals(min_value=Decimal("1e15"), max_value=Decimal("1e30"), places=3).map(str),
    st.sampled_from(["1e20", "1E+25", "99999999999999999999", "1e400", "Infinity", "NaN", " "]),
)


def test_a_transfer_of_1e20_is_a_field_error_not_an_overflow(
    treasury: Treasury, treasurer: Membership
) -> None:
    with pytest.raises(ValidationError) as caught:
        transfer_request(
            requester=treasurer,
            from_account=treasury.master,
            to_account=treasury.sub,
            asset="BTC",
            amount="100000000000000000000",
        )
    assert "must be less than" in caught.value.message_dict["amount"][0]
    assert not Transfer.objects.exists()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(amount=huge)
def test_huge_or_odd_transfer_amounts_are_field_errors(
    treasury: Treasury, treasurer: Membership, amount: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        transfer_request(
            requester=treasurer,
            from_account=treasury.master,
            to_account=treasury.sub,
            asset="BTC",
            amount=amount,
        )
    assert "amount" in caught.value.message_dict
    assert not Transfer.objects.exists()
    assert not ApprovalRequest.objects.exists()
