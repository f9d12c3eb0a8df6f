"""Staking writes: ask for an allocation or deallocation, carry it out as one exchange operation,
follow it at Kraken to its end, and keep the queue per account and strategy moving.

A request's life:

    awaiting_approval ──approved──▶ queued | sending          (below the threshold: no approval)
    queued ──the request ahead finished──▶ sending
    sending ──operation DONE──▶ pending ──status: not pending──▶ bonding | unbonding | done
                 └─ REJECTED / NOT_PLACED ─▶ failed     └─ status reports a failure ─▶ failed
    bonding | unbonding ──the lock is gone from Allocations──▶ done

Kraken runs one (de)allocation per account and strategy at a time; `sending` and `pending` are
the portal's "at Kraken" (one per pair, a constraint), and the others wait in the queue, in order.
Bonding and unbonding are states of the allocation at Kraken, not operations: they do not keep
the strategy busy, so the next request starts as soon as the status call says "not pending".
"""

from __future__ import annotations

import logging
from decimal import ROUND_UP, Decimal
from typing import Any

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.approvals.models import DECIMAL_PLACES as APPROVAL_PLACES
from apps.approvals.models import ApprovalRequest
from apps.approvals.policies import policy_for, policy_tiers
from apps.approvals.services import approval_cancel, approval_request_create
from apps.core.amounts import quantize
from apps.core.trail import audit_record
from apps.exchange.balances import AssetBalance, account_balances, spendable
from apps.exchange.services import balances_refresh, operation_prepare
from apps.kraken.errors import KrakenError
from apps.market.conversion import ConversionError, value_in
from apps.notifications.services import notify
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.staking import earn, live
from apps.staking.models import AT_KRAKEN, FINISHED, StakeRequest
from apps.staking.services.common import (
    ABOVE_ALLOCATED,
    ABOVE_CAP,
    ACCOUNT_UNKNOWN,
    ALREADY_ASKED,
    AMOUNT_NOT_POSITIVE,
    APPROVAL_KIND,
    AUTO_EARN,
    AWAITING_APPROVAL,
    BELOW_MINIMUM,
    CANCEL_NOT_YOURS,
    NOT_ALLOCATABLE,
    NOT_ALLOWED,
    NOT_CANCELLABLE,
    NOT_DEALLOCATABLE,
    NOT_PREAPPROVED,
    NOT_SPENDABLE,
    OPERATION_KIND,
    QUEUED,
    REQUESTER_GONE,
    SENT,
    STRATEGY_UNKNOWN,
    TOO_MANY_DECIMALS,
    Direction,
    Status,
    plain,
)
from apps.vault.models import Use
from apps.vault.selectors import NoCredential, credential_for

logger = logging.getLogger(__name__)


def _asset_places(asset: str) -> int | None:
    from apps.kraken.models import Asset
    from apps.kraken.selectors import asset_get

    try:
        return int(asset_get(name=asset).decimals)
    except Asset.DoesNotExist:
        return None


def _check(
    *, account: KrakenAccount, strategy: earn.Strategy, direction: str, amount: Decimal
) -> None:
    """The rules the portal can check before asking Kraken (Kraken checks them again, and the
    ones only it knows: funds, total caps)."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if strategy.is_auto_earn:
        add("strategy_id", AUTO_EARN)
    elif direction == Direction.ALLOCATE and not strategy.allocatable:
        add("strategy_id", NOT_ALLOCATABLE.format(account=account.label, why=strategy.why_not))
    elif direction == Direction.DEALLOCATE and not strategy.can_deallocate:
        add("strategy_id", NOT_DEALLOCATABLE)
    if amount <= 0:
        add("amount", AMOUNT_NOT_POSITIVE)
    places = _asset_places(strategy.asset)
    if places is not None and amount.as_tuple().exponent < -places:  # type: ignore[operator]
        add("amount", TOO_MANY_DECIMALS.format(asset=strategy.asset, places=places))
    if errors:
        raise ValidationError(errors)
    if amount < strategy.min_allocation:
        add(
            "amount",
            BELOW_MINIMUM.format(minimum=plain(strategy.min_allocation), asset=strategy.asset),
        )
    holding = earn.allocations(account).get(strategy.id)
    held = holding.total if holding else Decimal(0)
    cap = strategy.user_cap
    if direction == Direction.ALLOCATE and cap is not None and held + amount > cap:
        add(
            "amount",
            ABOVE_CAP.format(
                account=account.label, cap=plain(cap), asset=strategy.asset, held=plain(held)
            ),
        )
    if direction == Direction.ALLOCATE:
        available = _spendable(account, strategy.asset)
        if available is not None and amount > available:
            add(
                "amount",
                NOT_SPENDABLE.format(
                    spendable=plain(available), asset=strategy.asset, account=account.label
                ),
            )
    if direction == Direction.DEALLOCATE:
        allocated = holding.allocated if holding else Decimal(0)
        if amount > allocated:
            add(
                "amount",
                ABOVE_ALLOCATED.format(
                    account=account.label,
                    held=plain(allocated),
                    asset=strategy.asset,
                    amount=plain(amount),
                ),
            )
    if errors:
        raise ValidationError(errors)


BALANCES_REFRESH_EVERY = 30  # seconds: at most one REST refresh per account in that time


def balances_current(*, account: KrakenAccount, force: bool = False) -> list[AssetBalance]:
    """The account's Earn-aware balances (apps.exchange.balances), refreshed over REST when
    the streams have not written them lately. Best effort: without a read key, the rows as
    they are."""
    key = f"staking:balances-refreshed:{account.pk}"
    if force or cache.add(key, 1, BALANCES_REFRESH_EVERY):
        try:
            balances_refresh(account=account)
        except (NoCredential, KrakenError) as error:
            logger.info("staking: balances of account %s not refreshed: %s", account.pk, error)
    return account_balances(account=account)


def _spendable(account: KrakenAccount, asset: str) -> Decimal | None:
    """The platform's one definition (spot - holds + auto-earn), or None when the account's
    balances are not known."""
    if not balances_current(account=account):
        return None
    return spendable(account=account, asset=asset)


def _valuation(*, asset: str, amount: Decimal, currency: str) -> tuple[Decimal | None, str, str]:
    """(value, rate, route) in `currency`; no value when no fresh price exists."""
    try:
        valuation = value_in(asset=asset, quantity=amount, currency=currency)
    except ConversionError:
        return None, "", ""
    # At the approvals' precision (what the policy compares and the approvers see).
    value = quantize(valuation.value, APPROVAL_PLACES, rounding=ROUND_UP)
    return value, format(valuation.rate, "f"), valuation.route


def approval_needed(*, org: Any, kind: str, value: Decimal | None) -> bool:
    """At or above the policy's lowest threshold; and always when no price values it (fail
    closed: an amount nobody can value is not waved through)."""
    tiers = policy_tiers(policy_for(org=org, kind=kind))
    if value is None or not tiers:
        return True
    return value >= min(tier.min_value for tier in tiers)


@transaction.atomic(durable=True)
def stake_request_create(
    *,
    membership: Membership,
    account: KrakenAccount,
    strategy_id: str,
    direction: str,
    amount: Decimal,
    request: HttpRequest | None = None,
    idempotency_key: str = "",
    preapproved: ApprovalRequest | None = None,
) -> tuple[StakeRequest, str]:
    """Ask for a (de)allocation; returns the request and what to tell the member. Raises
    ValidationError (field-keyed where a field is at fault) and PermissionDenied.

    For unattended callers (a scheduled workflow's run): `idempotency_key` makes a repeated
    call return the request the first one made instead of asking twice, and `preapproved` is
    the approval that already covers it (approved, same organization), so it is not asked
    again."""
    if not membership.can(Capability.REQUEST_FUNDING):
        raise PermissionDenied(NOT_ALLOWED)
    if idempotency_key:
        earlier = StakeRequest.objects.filter(
            org=membership.org, idempotency_key=idempotency_key
        ).first()
        if earlier is not None:
            return earlier, ALREADY_ASKED
    if preapproved is not None and (
        preapproved.org_id != membership.org_id
        or preapproved.status
        not in (ApprovalRequest.Status.APPROVED, ApprovalRequest.Status.EXECUTED)
    ):
        raise ValidationError(NOT_PREAPPROVED)
    if account.org_id != membership.org_id or account.archived_at is not None:
        raise ValidationError({"account": [ACCOUNT_UNKNOWN]})
    direction = Direction(direction)
    try:
        strategy = earn.strategy_get(account, strategy_id)
    except earn.EarnUnavailable as error:
        raise ValidationError(error.message) from None
    if strategy is None:
        raise ValidationError({"strategy_id": [STRATEGY_UNKNOWN.format(account=account.label)]})
    try:
        _check(account=account, strategy=strategy, direction=direction, amount=amount)
    except earn.EarnUnavailable as error:
        raise ValidationError(error.message) from None
    kind = APPROVAL_KIND[direction]
    policy = policy_for(org=membership.org, kind=kind)
    value, rate, route = _valuation(asset=strategy.asset, amount=amount, currency=policy.currency)
    row = StakeRequest(
        org=membership.org,
        account=account,
        strategy_id=strategy.id,
        asset=strategy.asset,
        lock_type=strategy.lock_type,
        direction=direction,
        amount=amount,
        value=value,
        currency=policy.currency if value is not None else "",
        requested_by=membership.user,
        status=Status.AWAITING_APPROVAL,
        idempotency_key=idempotency_key,
        approval_id=preapproved.pk if preapproved is not None else None,
    )
    row.full_clean()
    row.save()
    audit_record(
        action=f"staking.{direction}.requested",
        actor=membership,
        target=row,
        request=request,
        detail={
            "account": account.label,
            "strategy_id": strategy.id,
            "asset": strategy.asset,
            "amount": format(amount, "f"),
            "value": format(value, "f") if value is not None else None,
            "currency": row.currency,
        },
    )
    if preapproved is None and approval_needed(org=membership.org, kind=kind, value=value):
        summary: dict[str, Any] = {
            "account": account.label,
            "strategy_id": strategy.id,
            "lock_type": strategy.lock_type,
            "asset": strategy.asset,
            "amount": format(amount, "f"),
            "direction": direction,
        }
        if value is not None:
            summary.update(rate=rate, route=route, value=format(value, "f"))
        approval = approval_request_create(
            org=membership.org,
            kind=kind,
            requester=membership,
            summary=summary,
            subject=row,
            value=value,
            currency=policy.currency if value is not None else "",
            asset=strategy.asset,
            amount=amount,
            request=request,
        )
        row.approval_id = approval.pk
        row.save(update_fields=["approval_id", "updated_at"])
        live.request_changed_on_commit(row)
        return row, AWAITING_APPROVAL
    message = _launch(row, membership=membership)
    return row, message


def _queue_position(row: StakeRequest) -> int:
    return (
        StakeRequest.objects.filter(
            account_id=row.account_id,
            strategy_id=row.strategy_id,
            status__in=[Status.QUEUED, *AT_KRAKEN],
            created_at__lte=row.created_at,
        )
        .exclude(pk=row.pk)
        .count()
    )


def _launch(row: StakeRequest, *, membership: Membership) -> str:
    """Send the request to Kraken, or queue it behind the one that is there (or behind
    earlier queued ones). In the caller's transaction."""
    ahead = StakeRequest.objects.filter(
        account_id=row.account_id, strategy_id=row.strategy_id, status__in=AT_KRAKEN
    ).exclude(pk=row.pk)
    earlier_queued = StakeRequest.objects.filter(
        account_id=row.account_id,
        strategy_id=row.strategy_id,
        status=Status.QUEUED,
        created_at__lt=row.created_at,
    ).exclude(pk=row.pk)
    if ahead.exists() or earlier_queued.exists():
        return _queue(row)
    try:
        credential = credential_for(membership=membership, account=row.account, use=Use.FUNDING)
    except NoCredential as error:
        raise ValidationError(str(error)) from None
    try:
        with transaction.atomic():
            moved = StakeRequest.objects.filter(
                pk=row.pk, status__in=[Status.AWAITING_APPROVAL, Status.QUEUED]
            ).update(status=Status.SENDING, updated_at=timezone.now())
            if not moved:
                return ""
            operation = operation_prepare(
                org=row.org,
                credential=credential,
                kind=OPERATION_KIND[Direction(row.direction)],
                params={"strategy_id": row.strategy_id, "amount": row.amount},
                reference={"asset": row.asset},
                requested_by=membership.user,
            )
    except (IntegrityError, ValidationError):
        # Another request reached Kraken first (a race on the constraint), or an alike
        # operation is still unsettled at the exchange: wait in the queue.
        return _queue(row)
    row.status = Status.SENDING
    row.operation = operation
    row.save(update_fields=["operation", "updated_at"])
    audit_record(
        action=f"staking.{row.direction}.sent",
        actor=membership,
        target=row,
        detail={"operation": operation.pk, "strategy_id": row.strategy_id},
    )
    live.request_changed_on_commit(row)
    return SENT


def _queue(row: StakeRequest) -> str:
    StakeRequest.objects.filter(pk=row.pk).update(status=Status.QUEUED, updated_at=timezone.now())
    row.status = Status.QUEUED
    live.request_changed_on_commit(row)
    return QUEUED.format(account=row.account.label, position=_queue_position(row))


def _start_next(*, account_id: int, strategy_id: str) -> None:
    """The oldest queued request on the pair goes to Kraken (nothing if one is there)."""
    if StakeRequest.objects.filter(
        account_id=account_id, strategy_id=strategy_id, status__in=AT_KRAKEN
    ).exists():
        return
    for row in (
        StakeRequest.objects.select_related("account", "org")
        .filter(account_id=account_id, strategy_id=strategy_id, status=Status.QUEUED)
        .order_by("created_at", "id")
    ):
        membership = Membership.objects.filter(
            org_id=row.org_id, user_id=row.requested_by_id
        ).first()
        if membership is None or not membership.can(Capability.REQUEST_FUNDING):
            _finish(row, to=Status.FAILED, from_states=(Status.QUEUED,), error=REQUESTER_GONE)
            continue
        try:
            _launch(row, membership=membership)
        except ValidationError as error:
            _finish(
                row, to=Status.FAILED, from_states=(Status.QUEUED,), error=" ".join(error.messages)
            )
            continue
        return


def _finish(
    row: StakeRequest, *, to: str, from_states: tuple[str, ...], error: str = "", **fields: Any
) -> bool:
    """Move `row` to a state if it is still in one of `from_states` (conditional UPDATE), with
    its audit record, live card and, at the end, the notification. In the caller's
    transaction."""
    now = timezone.now()
    values: dict[str, Any] = {"status": to, "updated_at": now, **fields}
    if error:
        values["error"] = error[:2000]
    if to in FINISHED:
        values["finished_at"] = now
    moved = StakeRequest.objects.filter(pk=row.pk, status__in=from_states).update(**values)
    if not moved:
        return False
    previous = row.status
    for name, value in values.items():
        setattr(row, name, value)
    audit_record(
        action=f"staking.{row.direction}.{to}",
        org=row.org,
        target=row,
        detail={
            "from": previous,
            "strategy_id": row.strategy_id,
            **({"error": error} if error else {}),
        },
    )
    earn.allocations_forget(row.account_id)
    live.request_changed_on_commit(row)
    if to in (Status.DONE, Status.FAILED):
        verb = "Allocation" if row.direction == Direction.ALLOCATE else "Deallocation"
        outcome = "done" if to == Status.DONE else "failed"
        notify(
            org=row.org,
            user_ids=[row.requested_by_id],
            kind="staking.completed",
            title=f"{verb} of {plain(row.amount)} {row.asset} {outcome}",
            body=error or f"{row.account.label} · {row.strategy_id}",
            link=f"/o/{row.org.slug}/staking/",
        )
    return True


@transaction.atomic(durable=True)
def stake_request_cancel(*, row: StakeRequest, membership: Membership) -> StakeRequest:
    """Cancel a request that still waits (for approval, or in the queue)."""
    from apps.orgs.permissions import Role

    if row.org_id != membership.org_id:
        raise PermissionDenied(CANCEL_NOT_YOURS)
    if row.requested_by_id != membership.user_id and membership.role != Role.OWNER:
        raise PermissionDenied(CANCEL_NOT_YOURS)
    if row.status not in (Status.AWAITING_APPROVAL, Status.QUEUED):
        raise ValidationError(NOT_CANCELLABLE)
    _finish(
        row,
        to=Status.CANCELLED,
        from_states=(Status.AWAITING_APPROVAL, Status.QUEUED),
        error=f"Cancelled by {membership.user.email}.",
    )
    approval = (
        ApprovalRequest.objects.filter(pk=row.approval_id).first() if row.approval_id else None
    )
    if approval is not None and approval.status in (
        ApprovalRequest.Status.PENDING,
        ApprovalRequest.Status.APPROVED,
    ):
        approval_cancel(approval=approval, actor=membership)
    return row
