"""What the portal refuses before anything reaches Kraken, and what waits for approval, against
the sandbox's real Strategies and Allocations (no worker: nothing here is sent)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.approvals.models import ApprovalRequest
from apps.exchange.models import Operation
from apps.orgs.models import Membership
from apps.staking import earn, services
from apps.staking.models import StakeRequest
from tests.staking.conftest import (
    DOT_AUTO,
    DOT_BONDED,
    DOT_FLEX,
    USDC_FLEX,
    EarnDesk,
    make_earn_desk,
)

pytestmark = pytest.mark.django_db


def _messages(error: ValidationError) -> str:
    return " ".join(error.messages)


def ask(membership: Membership, desk: EarnDesk, strategy: str, amount: str, **kw: Any) -> Any:
    return services.stake_request_create(
        membership=membership,
        account=desk.account,
        strategy_id=strategy,
        direction=kw.get("direction", "allocate"),
        amount=Decimal(amount),
    )


def test_the_catalogue_reads_lock_types_and_why_a_strategy_is_not_allocatable(
    desk: EarnDesk, owner: Membership, earn_sandbox: Any
) -> None:
    starter = make_earn_desk(earn_sandbox, owner, tier="starter")
    offered = {s.id: s for s in earn.strategies(starter.account, fresh=True)}
    assert offered[DOT_FLEX].lock_type == "instant"
    assert offered[DOT_FLEX].allocatable
    assert offered[DOT_AUTO].lock_type == "flex"
    assert not offered[DOT_AUTO].allocatable
    assert "auto-earn" in offered[DOT_AUTO].why_not
    bonded = offered[DOT_BONDED]
    assert bonded.lock_type == "bonded"
    assert bonded.unbonding_seconds == 28 * 86400
    assert not bonded.allocatable
    assert bonded.restrictions == ("tier",)
    assert "tier is too low" in bonded.why_not


def test_below_the_minimum_is_refused_next_to_the_amount(
    desk: EarnDesk, treasurer: Membership, earn_prices: None
) -> None:
    with pytest.raises(ValidationError) as refused:
        ask(treasurer, desk, DOT_FLEX, "0.001")
    assert services.BELOW_MINIMUM.format(minimum="0.01", asset="DOT") in _messages(refused.value)
    assert not StakeRequest.objects.exists()
    assert not Operation.objects.exists()


def test_above_the_accounts_cap_is_refused(
    desk: EarnDesk, treasurer: Membership, earn_prices: None
) -> None:
    with pytest.raises(ValidationError) as refused:
        ask(treasurer, desk, USDC_FLEX, "100001")
    assert "above the strategy's cap of 100000 USDC" in _messages(refused.value)


def test_more_than_is_spendable_is_refused(
    desk: EarnDesk, treasurer: Membership, earn_prices: None
) -> None:
    with pytest.raises(ValidationError) as refused:
        ask(treasurer, desk, DOT_FLEX, "1000.5")  # the account holds 1000 DOT
    assert "Only 1000 DOT is spendable on" in _messages(refused.value)


def test_auto_earn_is_never_allocatable(
    desk: EarnDesk, treasurer: Membership, earn_prices: None
) -> None:
    with pytest.raises(ValidationError) as refused:
        ask(treasurer, desk, DOT_AUTO, "5")
    assert services.AUTO_EARN in _messages(refused.value)


def test_a_strategy_the_accounts_tier_does_not_allow_is_refused_with_the_reason(
    treasurer: Membership, owner: Membership, earn_sandbox: Any, earn_prices: None
) -> None:
    starter = make_earn_desk(earn_sandbox, owner, tier="starter")
    with pytest.raises(ValidationError) as refused:
        ask(treasurer, starter, DOT_BONDED, "5")
    assert "may not allocate to this strategy" in _messages(refused.value)
    assert "tier is too low" in _messages(refused.value)


def test_deallocating_more_than_is_allocated_is_refused(
    desk: EarnDesk, treasurer: Membership, earn_prices: None
) -> None:
    with pytest.raises(ValidationError) as refused:
        ask(treasurer, desk, DOT_FLEX, "1", direction="deallocate")
    assert "has 0 DOT allocated" in _messages(refused.value)


def test_an_unknown_strategy_is_refused(desk: EarnDesk, treasurer: Membership) -> None:
    with pytest.raises(ValidationError) as refused:
        ask(treasurer, desk, "ESNOSUCH-STRAT-EGY000", "1")
    assert "no such Earn strategy" in _messages(refused.value)


@pytest.mark.parametrize("role", ["viewer", "trader", "approver", "admin"])
def test_roles_without_funding_rights_cannot_ask(
    desk: EarnDesk, role: str, request: pytest.FixtureRequest
) -> None:
    membership = request.getfixturevalue(role)
    with pytest.raises(PermissionDenied):
        ask(membership, desk, DOT_FLEX, "1")


def test_below_the_threshold_it_goes_straight_to_kraken(
    desk: EarnDesk, treasurer: Membership, earn_prices: None
) -> None:
    row, message = ask(treasurer, desk, DOT_FLEX, "10")
    assert message == services.SENT
    assert row.status == StakeRequest.Status.SENDING
    assert row.value is not None
    assert row.value < Decimal(10000)
    assert row.currency == "USD"
    operation = Operation.objects.get(pk=row.operation_id)
    assert operation.kind == "Earn/Allocate"
    assert operation.params == {"strategy_id": DOT_FLEX, "amount": "10"}
    assert operation.reference["asset"] == "DOT"
    assert not ApprovalRequest.objects.exists()


def test_at_or_above_the_threshold_it_waits_for_approval(
    desk: EarnDesk, treasurer: Membership, approver: Membership, earn_prices: None
) -> None:
    row, message = ask(treasurer, desk, "ESMWVX6-JAPVY-23L3CV", "20000")  # 20 000 USDC
    assert message == services.AWAITING_APPROVAL
    assert row.status == StakeRequest.Status.AWAITING_APPROVAL
    approval = ApprovalRequest.objects.get(pk=row.approval_id)
    assert approval.kind == "staking.allocate"
    assert approval.value == row.value
    assert approval.summary["amount"] == "20000"
    assert "rate" in approval.summary
    assert "Allocate 20000 USDC to ESMWVX6-JAPVY-23L3CV" in services.approval_describe(approval)
    assert not Operation.objects.exists()


def test_without_a_price_a_request_waits_for_approval(
    desk: EarnDesk, treasurer: Membership, settings: Any
) -> None:
    from tests.market.conftest import clear_market_keys

    clear_market_keys()
    row, message = ask(treasurer, desk, DOT_FLEX, "1")
    assert message == services.AWAITING_APPROVAL
    assert row.value is None


def test_a_second_request_on_the_same_strategy_waits_in_the_queue(
    desk: EarnDesk, treasurer: Membership, earn_prices: None
) -> None:
    first, _ = ask(treasurer, desk, DOT_FLEX, "10")
    second, message = ask(treasurer, desk, DOT_FLEX, "11")
    assert first.status == StakeRequest.Status.SENDING
    assert second.status == StakeRequest.Status.QUEUED
    assert second.operation_id is None
    assert message == services.QUEUED.format(account=desk.account.label, position=1)
    other, _ = ask(treasurer, desk, USDC_FLEX, "10")
    assert other.status == StakeRequest.Status.SENDING  # another strategy is not blocked


def test_a_queued_request_can_be_cancelled_by_its_requester_only(
    desk: EarnDesk, treasurer: Membership, owner: Membership, earn_prices: None
) -> None:
    ask(treasurer, desk, DOT_FLEX, "10")
    queued, _ = ask(treasurer, desk, DOT_FLEX, "11")
    other_treasurer = Membership.objects.create(
        org=treasurer.org,
        user=owner.user.__class__.objects.create(email="t2@acme.test"),
        role="treasurer",
    )
    with pytest.raises(PermissionDenied):
        services.stake_request_cancel(row=queued, membership=other_treasurer)
    services.stake_request_cancel(row=queued, membership=treasurer)
    queued.refresh_from_db()
    assert queued.status == StakeRequest.Status.CANCELLED


def test_the_daily_digest_tells_treasurers_and_owners_what_earn_paid(
    desk: EarnDesk,
    treasurer: Membership,
    owner: Membership,
    viewer: Membership,
    earn_sandbox: Any,
    earn_prices: None,
) -> None:
    from apps.notifications.models import Notification
    from apps.staking.models import RewardSnapshot

    desk.look(earn_sandbox, "Earn/Allocate", {"strategy_id": DOT_FLEX, "amount": "500"})
    earn_sandbox.advance(5)  # processed
    services.snapshot_account(desk.account)
    earn_sandbox.advance(86400)  # a day of rewards at the strategy's APR
    services.snapshot_account(desk.account)
    first, last = RewardSnapshot.objects.filter(strategy_id=DOT_FLEX).order_by("taken_at", "id")
    assert last.rewarded > first.rewarded
    assert last.price is not None
    assert last.currency == "USD"
    assert services.rewards_digest_send() == 1
    notes = Notification.objects.filter(kind="staking.rewards")
    assert {n.recipient_id for n in notes} == {treasurer.user_id, owner.user_id}
    gained = last.rewarded - first.rewarded
    assert notes[0].body == f"{gained.normalize():f} DOT"


def test_asking_again_with_the_same_key_returns_the_first_request(
    desk: EarnDesk, treasurer: Membership, earn_prices: None
) -> None:
    first, _ = services.stake_request_create(
        membership=treasurer,
        account=desk.account,
        strategy_id=DOT_FLEX,
        direction="allocate",
        amount=Decimal(10),
        idempotency_key="schedules.run:7",
    )
    again, message = services.stake_request_create(
        membership=treasurer,
        account=desk.account,
        strategy_id=DOT_FLEX,
        direction="allocate",
        amount=Decimal(10),
        idempotency_key="schedules.run:7",
    )
    assert again.pk == first.pk
    assert message == services.ALREADY_ASKED
    assert StakeRequest.objects.count() == 1
    assert Operation.objects.count() == 1


def test_an_approval_given_beforehand_covers_a_request_above_the_threshold(
    desk: EarnDesk, treasurer: Membership, owner: Membership, earn_prices: None
) -> None:
    from apps.approvals.models import ApprovalRequest

    given = ApprovalRequest.objects.create(
        org=owner.org,
        kind="schedules.workflow",
        requester=owner.user,
        summary={},
        fingerprint="x",
        required_approvals=1,
        status=ApprovalRequest.Status.APPROVED,
        expires_at=owner.org.created_at,
    )
    row, message = services.stake_request_create(
        membership=treasurer,
        account=desk.account,
        strategy_id=USDC_FLEX,
        direction="allocate",
        amount=Decimal(20000),  # above the 10 000 USD threshold
        preapproved=given,
    )
    assert message == services.SENT
    assert row.approval_id == given.pk
    given.status = ApprovalRequest.Status.REJECTED
    given.save()
    with pytest.raises(ValidationError):
        services.stake_request_create(
            membership=treasurer,
            account=desk.account,
            strategy_id=USDC_FLEX,
            direction="allocate",
            amount=Decimal(5),
            preapproved=given,
        )
