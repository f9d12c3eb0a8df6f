"""Four-eyes on withdrawals, transfers and allow-listing, through the approvals platform with the
treasury's kinds: self-approval, double approval, expiry, too-low role, missing step-up, a
changed request and a tier raised by a price move are refused or escalated; tiers and velocity
caps pick the right quorum (hypothesis over amounts and prices)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.approvals import services as approvals
from apps.approvals.models import ApprovalRequest, Policy
from apps.approvals.services import approval_decide, approval_request_create
from apps.exchange.models import Operation
from apps.funding.models import Transfer, Withdrawal
from apps.funding.services import transfer_request, withdrawal_request
from apps.funding.services.common import valued
from apps.funding.services.withdrawals import KIND, withdrawal_policy
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from tests.factories import MembershipFactory, UserFactory
from tests.funding.conftest import PRICES, Treasury, set_prices

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_tasks")]


def ask(treasury: Treasury, requester: Membership, amount: str = "0.01") -> Withdrawal:
    return withdrawal_request(
        requester=requester,
        account=treasury.master,
        destination=treasury.destination,
        asset="BTC",
        amount=amount,
    )


def decide(
    withdrawal: Withdrawal | Transfer,
    who: Membership,
    *,
    verdict: str = "approve",
    stepped_up: bool = True,
    fingerprint: str | None = None,
) -> ApprovalRequest:
    approval = ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0)
    return approval_decide(
        approval=approval,
        actor=who,
        verdict=verdict,
        fingerprint_seen=fingerprint or approval.fingerprint,
        stepped_up=stepped_up,
    )


def second_approver(org: Any) -> Membership:
    return MembershipFactory(
        org=org, role=Role.APPROVER, user=UserFactory(email="approver2@acme.test")
    )


def nothing_sent() -> bool:
    return not Operation.objects.exists()


def test_the_requester_cannot_approve_their_own_withdrawal(
    treasury: Treasury, owner: Membership
) -> None:
    withdrawal = ask(treasury, owner)  # owners may request and approve, never both
    with pytest.raises(ValidationError, match="request you made yourself"):
        decide(withdrawal, owner)
    assert nothing_sent()


def test_one_person_cannot_approve_twice_where_two_are_needed(
    treasury: Treasury, treasurer: Membership, approver: Membership
) -> None:
    withdrawal = ask(treasury, treasurer, amount="0.5")  # 25,000 USD: two approvals
    decide(withdrawal, approver)
    with pytest.raises(ValidationError, match="already decided"):
        decide(withdrawal, approver)
    assert ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0).status == "pending"
    assert nothing_sent()
    decide(withdrawal, second_approver(treasurer.org))
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.PROCESSING


def test_an_expired_request_cannot_be_approved(
    treasury: Treasury, treasurer: Membership, approver: Membership
) -> None:
    withdrawal = ask(treasury, treasurer)
    ApprovalRequest.objects.filter(pk=withdrawal.approval_id or 0).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(ValidationError, match="expired"):
        decide(withdrawal, approver)
    approvals.approvals_run_due()
    from apps.funding.services.withdrawals import withdrawals_settle_unapproved

    withdrawals_settle_unapproved()
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.EXPIRED
    assert nothing_sent()


@pytest.mark.parametrize("role", [Role.TREASURER, Role.VIEWER, Role.TRADER, Role.ADMIN])
def test_a_role_that_may_not_approve_is_refused(
    treasury: Treasury, treasurer: Membership, role: str
) -> None:
    withdrawal = ask(treasury, treasurer)
    member = MembershipFactory(org=treasurer.org, role=role, user=UserFactory())
    with pytest.raises(ValidationError, match="cannot decide"):
        decide(withdrawal, member)
    assert nothing_sent()


def test_a_decision_without_a_fresh_step_up_is_refused(
    treasury: Treasury, treasurer: Membership, approver: Membership
) -> None:
    withdrawal = ask(treasury, treasurer)
    with pytest.raises(PermissionDenied):
        decide(withdrawal, approver, stepped_up=False)
    assert ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0).decisions.count() == 0
    assert nothing_sent()


def test_a_withdrawal_changed_after_it_was_shown_is_refused_and_earlier_approvals_void(
    treasury: Treasury, treasurer: Membership, approver: Membership
) -> None:
    withdrawal = ask(treasury, treasurer, amount="0.5")  # two approvals
    decide(withdrawal, approver)
    seen = ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0).fingerprint
    Withdrawal.objects.filter(pk=withdrawal.pk).update(amount=Decimal("0.9"))
    with pytest.raises(ValidationError, match="changed since you opened it"):
        decide(withdrawal, second_approver(treasurer.org), fingerprint=seen)
    approval = ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0)
    assert approval.decisions.filter(voided_at__isnull=True).count() == 0
    assert nothing_sent()


def test_a_price_move_that_raises_the_tier_waits_for_the_extra_approval(
    treasury: Treasury, treasurer: Membership, approver: Membership
) -> None:
    withdrawal = ask(treasury, treasurer, amount="0.1")  # 5,000 USD: one approval
    assert ApprovalRequest.objects.get(pk=withdrawal.approval_id or 0).required_approvals == 1
    set_prices({**PRICES, "BTC/USD": Decimal("150000")})  # now 15,000 USD: two
    approval = decide(withdrawal, approver)

    approval.refresh_from_db()
    assert approval.status == "pending"
    assert approval.required_approvals == 2
    assert approval.events.filter(action="escalated").exists()
    assert nothing_sent()
    decide(withdrawal, second_approver(treasurer.org))
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.PROCESSING


def test_a_stale_price_refuses_the_request_and_fails_execution_closed(
    treasury: Treasury, treasurer: Membership, approver: Membership, settings: Any
) -> None:
    withdrawal = ask(treasury, treasurer)
    set_prices(PRICES, age=settings.MARKET_PRICE_MAX_AGE + 30)
    approval = decide(withdrawal, approver)
    approval.refresh_from_db()
    assert approval.status == "failed"
    assert "No current price" in approval.error
    assert nothing_sent()
    with pytest.raises(ValidationError) as caught:
        ask(treasury, treasurer)
    assert "old" in caught.value.message_dict["amount"][0]


def test_transfers_need_another_persons_approval_too(
    treasury: Treasury, treasurer: Membership, viewer: Membership
) -> None:
    transfer = transfer_request(
        requester=treasurer,
        from_account=treasury.sub,
        to_account=treasury.master,
        asset="BTC",
        amount="0.1",
    )
    with pytest.raises(ValidationError, match="request you made yourself"):
        decide(transfer, treasurer)
    with pytest.raises(ValidationError, match="cannot decide"):
        decide(transfer, viewer)
    assert nothing_sent()


def atomic_create(**kwargs: Any) -> ApprovalRequest:
    with transaction.atomic():
        return approval_request_create(**kwargs)


# --- tiers and caps --------------------------------------------------------------------------


def expected(value: Decimal) -> tuple[int, bool]:
    """Issue 12's example default: ≤ 10,000 one; above two; above 1,000,000 two with an owner."""
    if value <= Decimal(10000):
        return 1, False
    if value <= Decimal(1000000):
        return 2, False
    return 2, True


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    amount=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(40), places=8),
    price=st.decimals(min_value=Decimal(100), max_value=Decimal(200000), places=2),
)
def test_the_tier_follows_the_value_at_the_current_price(
    prices: Any, treasurer: Membership, amount: Decimal, price: Decimal
) -> None:
    set_prices({**PRICES, "BTC/USD": price})
    org = treasurer.org
    policy = withdrawal_policy(org)
    Policy.objects.filter(pk=policy.pk).update(velocity_caps={})  # tiers only here
    worth = valued(org=org, kind=KIND, asset="BTC", amount=amount)
    assert worth.value == (amount * price).quantize(Decimal("0.00000001"))
    approval = approval_request_create(
        org=org,
        kind=KIND,
        requester=treasurer,
        summary={"rate": worth.rate, "withdrawal_id": 0},
        value=worth.value,
        currency=worth.currency,
        asset="BTC",
        amount=amount,
    )
    assert (approval.required_approvals, approval.owner_required) == expected(worth.value)
    assert set(approval.approver_roles) == {Role.OWNER, Role.APPROVER}


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    amounts=st.lists(st.decimals(min_value=Decimal(1), max_value=Decimal(30), places=4), max_size=6)
)
def test_the_daily_cap_per_asset_refuses_what_would_exceed_it(
    prices: Any, treasurer: Membership, amounts: list[Decimal]
) -> None:
    set_prices(PRICES)  # fresh for each example: the whole test may outlast the price limit
    org = treasurer.org
    ApprovalRequest.objects.filter(org=org).delete()
    withdrawal_policy(org)  # default caps: 50 BTC a day
    spent = Decimal(0)
    for amount in amounts:
        worth = valued(org=org, kind=KIND, asset="BTC", amount=amount)
        create = lambda a=amount, w=worth: atomic_create(  # noqa: E731
            org=org,
            kind=KIND,
            requester=treasurer,
            summary={"rate": w.rate, "withdrawal_id": 0},
            value=w.value,
            currency=w.currency,
            asset="BTC",
            amount=a,
        )
        if spent + amount > Decimal(50):
            with pytest.raises(ValidationError, match="above the cap of 50"):
                create()
        else:
            create()
            spent += amount
    assert ApprovalRequest.objects.filter(org=org, kind=KIND).count() <= len(amounts)
