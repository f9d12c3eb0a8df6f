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

import hashlib
import logging
from datetime import timedelta
from decimal import ROUND_UP, Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from apps.approvals.models import DECIMAL_PLACES as APPROVAL_PLACES
from apps.approvals.models import ApprovalRequest
from apps.approvals.policies import policy_for, policy_tiers
from apps.approvals.services import approval_cancel, approval_request_create
from apps.core.amounts import quantize
from apps.core.trail import audit_record
from apps.exchange.balances import AssetBalance, account_balances, spendable
from apps.exchange.models import Kind, Operation
from apps.exchange.services import balances_refresh, operation_prepare
from apps.kraken.errors import KrakenError
from apps.market.conversion import ConversionError, value_in
from apps.notifications.services import notify
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.staking import earn, live
from apps.staking.models import AT_KRAKEN, FINISHED, RewardSnapshot, StakeRequest
from apps.vault.models import Use
from apps.vault.selectors import NoCredential, credential_for

logger = logging.getLogger(__name__)

Status = StakeRequest.Status
Direction = StakeRequest.Direction

KIND_ALLOCATE = "staking.allocate"
KIND_DEALLOCATE = "staking.deallocate"
APPROVAL_KIND = {Direction.ALLOCATE: KIND_ALLOCATE, Direction.DEALLOCATE: KIND_DEALLOCATE}
OPERATION_KIND = {
    Direction.ALLOCATE: Kind.EARN_ALLOCATE,
    Direction.DEALLOCATE: Kind.EARN_DEALLOCATE,
}

# What a member is told (module constants, so tests assert on them).
NOT_ALLOWED = "Your role cannot allocate or deallocate: it needs a treasurer or an owner."
ACCOUNT_UNKNOWN = "No such Kraken account in this organization."
STRATEGY_UNKNOWN = "Kraken offers no such Earn strategy to {account}."
AMOUNT_NOT_POSITIVE = "Enter an amount above zero."
TOO_MANY_DECIMALS = "{asset} takes at most {places} decimals."
BELOW_MINIMUM = "The minimum for this strategy is {minimum} {asset}."
ABOVE_CAP = (
    "That would take {account} above the strategy's cap of {cap} {asset} "
    "(it holds {held} {asset} there)."
)
AUTO_EARN = (
    "Auto-earn strategies cannot be allocated to or deallocated from: funds earn while they stay "
    "in the spot wallet."
)
NOT_ALLOCATABLE = "{account} may not allocate to this strategy: {why}."
NOT_DEALLOCATABLE = (
    "This strategy does not take deallocations: its funds come back by themselves when the "
    "lock ends."
)
NOT_SPENDABLE = (
    "Only {spendable} {asset} is spendable on {account} (spot less holds, plus auto-earn); "
    "allocated Earn funds must be deallocated first."
)
ABOVE_ALLOCATED = "{account} has {held} {asset} allocated to this strategy; you asked for {amount}."
QUEUED = (
    "Another allocation or deallocation on this strategy is at Kraken for {account}: yours waits "
    "in the queue (position {position}) and starts when it finishes."
)
AWAITING_APPROVAL = "Above the approval threshold: the request waits for approval."
SENT = "Sent to Kraken; it shows as pending until Kraken has processed it."
NOT_CANCELLABLE = "Only a request that waits (for approval or in the queue) can be cancelled."
CANCEL_NOT_YOURS = "Only the requester or an owner can cancel this request."
REQUESTER_GONE = "The member who asked for this may no longer allocate or deallocate."
NOT_PLACED = "It did not reach Kraken (nothing moved); ask again if you still want it."
# Kraken's refusals, in words (matched by prefix; FUNDING-EARN.md lists the strings).
KRAKEN_MESSAGES: tuple[tuple[str, str], ...] = (
    ("EEarnings:Below min", "Below the strategy's minimum; nothing moved."),
    (
        "EEarnings:Busy",
        "Kraken is still processing another allocation or deallocation on this strategy for "
        "this account (perhaps started outside the portal); nothing moved. Ask again once it "
        "has finished.",
    ),
    (
        "EEarnings:Permission denied",
        "Kraken does not let this account do this on the strategy (its tier, or the strategy "
        "does not take the operation); nothing moved.",
    ),
    (
        "EEarnings:Insufficient funds",
        "Not enough {asset} available on {account} for this; nothing moved.",
    ),
    ("EEarnings:Above max", "Above the strategy's limit (per account or in total); nothing moved."),
    ("EGeneral:Invalid arguments", "Kraken refused the request as invalid; nothing moved."),
)
KRAKEN_FAILED = "Kraken reported that it failed ({code}); nothing moved."


def plain(number: Decimal) -> str:
    """A quantity as people write it: no trailing zeros, no exponent (1000, 0.01)."""
    return format(number.normalize(), "f")


def kraken_message(code: str, request: StakeRequest) -> str:
    for prefix, text in KRAKEN_MESSAGES:
        if code.startswith(prefix):
            message = text.format(asset=request.asset, account=request.account.label)
            return f"{message} (Kraken: {code})"
    return KRAKEN_FAILED.format(code=code or "no detail")


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def poll_seconds() -> float:
    """How soon to ask Kraken again while an operation is pending."""
    return _setting("STAKING_POLL_SECONDS", 5.0)


def lock_poll_seconds() -> float:
    """How often to look whether a bonding or unbonding lock has ended."""
    return _setting("STAKING_LOCK_POLL_SECONDS", 300.0)


# --- Asking -----------------------------------------------------------------------------------


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
) -> tuple[StakeRequest, str]:
    """Ask for a (de)allocation; returns the request and what to tell the member. Raises
    ValidationError (field-keyed where a field is at fault) and PermissionDenied."""
    if not membership.can(Capability.REQUEST_FUNDING):
        raise PermissionDenied(NOT_ALLOWED)
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
    if approval_needed(org=membership.org, kind=kind, value=value):
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


# --- Following --------------------------------------------------------------------------------


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


def _schedule_follow(row: StakeRequest, delay: float) -> None:
    """Plan the next look at Kraken: bump the row's check sequence (a look carrying an older
    number finds nothing to claim, so a duplicated chain dies) and enqueue after commit."""
    due = timezone.now() + timedelta(seconds=delay)
    StakeRequest.objects.filter(pk=row.pk).update(check_seq=F("check_seq") + 1, next_check_at=due)
    seq = StakeRequest.objects.values_list("check_seq", flat=True).get(pk=row.pk)
    transaction.on_commit(partial(_enqueue_follow, row.pk, seq, delay), robust=True)


def _enqueue_follow(request_id: int, seq: int, delay: float) -> None:
    from apps.staking.tasks import stake_request_follow_task

    stake_request_follow_task.apply_async((request_id, seq), countdown=delay)


def _row_for(operation: Operation) -> StakeRequest | None:
    return (
        StakeRequest.objects.select_related("account", "org")
        .filter(operation_id=operation.pk)
        .first()
    )


def on_operation_done(operation: Operation) -> None:
    """Exchange hook: Kraken accepted the call (or the finder found that it did). Now pending."""
    row = _row_for(operation)
    if row is None:
        return
    with transaction.atomic(durable=True):
        # Kraken answers `true`; the finder's result (after a lost answer) is a dict that may
        # carry a failure the status call reported.
        result = operation.result if isinstance(operation.result, dict) else {}
        background = str(result.get("background_error") or "")
        if background:
            _finish(
                row,
                to=Status.FAILED,
                from_states=(Status.SENDING,),
                error=kraken_message(background, row),
            )
            _start_next(account_id=row.account_id, strategy_id=row.strategy_id)
            return
        if _finish(row, to=Status.PENDING, from_states=(Status.SENDING,)):
            _schedule_follow(row, min(poll_seconds(), 2.0))


def on_operation_refused(operation: Operation) -> None:
    """Exchange hook: Kraken refused the call (EEarnings:* included: nothing moved)."""
    row = _row_for(operation)
    if row is None:
        return
    with transaction.atomic(durable=True):
        _finish(
            row,
            to=Status.FAILED,
            from_states=(Status.SENDING,),
            error=kraken_message(operation.error_code, row),
        )
        _start_next(account_id=row.account_id, strategy_id=row.strategy_id)


def on_operation_not_placed(operation: Operation) -> None:
    row = _row_for(operation)
    if row is None:
        return
    with transaction.atomic(durable=True):
        _finish(row, to=Status.FAILED, from_states=(Status.SENDING,), error=NOT_PLACED)
        _start_next(account_id=row.account_id, strategy_id=row.strategy_id)


def _claimed_locks(row: StakeRequest) -> set[str]:
    return set(
        StakeRequest.objects.filter(
            account_id=row.account_id,
            strategy_id=row.strategy_id,
            status__in=[Status.BONDING, Status.UNBONDING],
        )
        .exclude(pk=row.pk)
        .values_list("lock_expires", flat=True)
    )


def _our_lock(row: StakeRequest, locks: tuple[earn.Lock, ...]) -> earn.Lock | None:
    """The lock this request made: unclaimed, of its amount if one is, the newest."""
    claimed = _claimed_locks(row)
    free = [lock for lock in locks if lock.expires_raw not in claimed]
    exact = [lock for lock in free if lock.amount == row.amount]
    candidates = exact or free
    if not candidates:
        return None
    return max(candidates, key=lambda lock: lock.created_at or timezone.now())


def stake_request_follow(*, request_id: int, seq: int) -> None:
    """One look at Kraken for a request at Kraken or in a lock; plans the next look."""
    claimed = StakeRequest.objects.filter(pk=request_id, check_seq=seq).update(
        check_seq=F("check_seq") + 1
    )
    if not claimed:
        return  # a newer look is planned (a duplicated chain ends here)
    row = StakeRequest.objects.select_related("account", "org").get(pk=request_id)
    if row.status == Status.PENDING:
        _follow_pending(row)
    elif row.status in (Status.BONDING, Status.UNBONDING):
        _follow_lock(row)


def _follow_pending(row: StakeRequest) -> None:
    try:
        pending = earn.operation_status(
            row.account, direction=row.direction, strategy_id=row.strategy_id
        )
    except KrakenError as error:
        if error.transient and not error.code.startswith("EGeneral:Internal"):
            with transaction.atomic(durable=True):
                _schedule_follow(row, poll_seconds())
            return
        # The status call carries a failure that happened in the background: nothing moved.
        with transaction.atomic(durable=True):
            _finish(
                row,
                to=Status.FAILED,
                from_states=(Status.PENDING,),
                error=kraken_message(error.code or error.detail or "", row),
            )
            _start_next(account_id=row.account_id, strategy_id=row.strategy_id)
        return
    except earn.EarnUnavailable:
        with transaction.atomic(durable=True):
            _schedule_follow(row, lock_poll_seconds())
        return
    if pending:
        with transaction.atomic(durable=True):
            _schedule_follow(row, poll_seconds())
        return
    try:
        holding = earn.allocations(row.account, fresh=True).get(row.strategy_id)
    except earn.EarnUnavailable:
        holding = None
    lock: earn.Lock | None = None
    to = Status.DONE
    if holding is not None and row.direction == Direction.ALLOCATE and holding.bonding_locks:
        lock, to = _our_lock(row, holding.bonding_locks), Status.BONDING
    elif holding is not None and row.direction == Direction.DEALLOCATE and holding.unbonding_locks:
        lock, to = _our_lock(row, holding.unbonding_locks), Status.UNBONDING
    if lock is None:
        to = Status.DONE
    with transaction.atomic(durable=True):
        fields: dict[str, Any] = {}
        if lock is not None:
            fields = {"expected_end": lock.expires, "lock_expires": lock.expires_raw}
        if _finish(row, to=to, from_states=(Status.PENDING,), **fields) and to != Status.DONE:
            _schedule_follow(row, lock_poll_seconds())
        # The strategy is free again at Kraken (a lock does not keep it busy).
        _start_next(account_id=row.account_id, strategy_id=row.strategy_id)
    _after_change(row.account)


def _follow_lock(row: StakeRequest) -> None:
    try:
        holding = earn.allocations(row.account, fresh=True).get(row.strategy_id)
    except earn.EarnUnavailable:
        with transaction.atomic(durable=True):
            _schedule_follow(row, lock_poll_seconds())
        return
    locks: tuple[earn.Lock, ...] = ()
    if holding is not None:
        locks = holding.bonding_locks if row.status == Status.BONDING else holding.unbonding_locks
    with transaction.atomic(durable=True):
        if any(lock.expires_raw == row.lock_expires for lock in locks):
            _schedule_follow(row, lock_poll_seconds())
            return
        _finish(row, to=Status.DONE, from_states=(row.status,))
    _after_change(row.account)


def _after_change(account: KrakenAccount) -> None:
    """Funds moved between spot and Earn: a reward snapshot, and fresh balances for every
    page (best effort; the streams and the hourly snapshot catch up otherwise)."""
    snapshot_account(account)
    balances_current(account=account, force=True)


def stake_requests_follow_due() -> int:
    """Beat: restart the looks of requests whose chain was lost (a worker died), and close the
    requests whose approval ended without being carried out. Returns how many it touched."""
    touched = 0
    overdue = timezone.now() - timedelta(seconds=max(120.0, 2 * poll_seconds()))
    for row in StakeRequest.objects.filter(
        status__in=[Status.PENDING, Status.BONDING, Status.UNBONDING], next_check_at__lt=overdue
    ):
        with transaction.atomic(durable=True):
            _schedule_follow(row, 0)
        touched += 1
    ended = [
        ApprovalRequest.Status.REJECTED,
        ApprovalRequest.Status.EXPIRED,
        ApprovalRequest.Status.CANCELLED,
        ApprovalRequest.Status.FAILED,
    ]
    for row in StakeRequest.objects.select_related("org", "account").filter(
        status=Status.AWAITING_APPROVAL, approval_id__isnull=False
    ):
        approval = ApprovalRequest.objects.filter(pk=row.approval_id or 0).first()
        if approval is None or approval.status in ended:
            reason = approval.get_status_display().lower() if approval else "gone"
            with transaction.atomic(durable=True):
                _finish(
                    row,
                    to=Status.CANCELLED,
                    from_states=(Status.AWAITING_APPROVAL,),
                    error=f"The approval request was {reason}.",
                )
            touched += 1
    return touched


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


# --- Approvals --------------------------------------------------------------------------------


def _approval_row(approval: ApprovalRequest) -> StakeRequest | None:
    if not approval.subject_id:
        return None
    return (
        StakeRequest.objects.select_related("account", "org")
        .filter(pk=int(approval.subject_id), org_id=approval.org_id)
        .first()
    )


def approval_fingerprint(approval: ApprovalRequest) -> str:
    row = _approval_row(approval)
    state = (
        f"{row.pk}:{row.status}:{row.account_id}:{row.strategy_id}:{row.direction}:{row.amount}"
        if row is not None
        else "gone"
    )
    return hashlib.sha256(state.encode()).hexdigest()


def approval_describe(approval: ApprovalRequest) -> str:
    summary = approval.summary
    verb = "Allocate" if summary.get("direction") == Direction.ALLOCATE else "Deallocate"
    preposition = "to" if verb == "Allocate" else "from"
    return (
        f"{verb} {summary.get('amount')} {summary.get('asset')} {preposition} "
        f"{summary.get('strategy_id')} ({summary.get('lock_type')}) on {summary.get('account')}"
    )


def approval_handler(approval: ApprovalRequest) -> None:
    """At quorum: the request goes to Kraken (or the queue) as the member who asked."""
    row = _approval_row(approval)
    if row is None or row.status != Status.AWAITING_APPROVAL:
        raise ValidationError(NOT_CANCELLABLE)
    membership = (
        Membership.objects.select_related("org", "user")
        .filter(org_id=approval.org_id, user_id=approval.requester_id)
        .first()
    )
    if membership is None or not membership.can(Capability.REQUEST_FUNDING):
        raise ValidationError(REQUESTER_GONE)
    _launch(row, membership=membership)


# --- Rewards ----------------------------------------------------------------------------------


def snapshot_account(account: KrakenAccount) -> list[RewardSnapshot]:
    """Record what `account` holds in Earn now, with the price of each asset in the
    organization's reporting currency. Skipped (empty) when Kraken cannot be read."""
    try:
        holdings = earn.allocations(account, fresh=True)
    except earn.EarnUnavailable:
        return []
    currency = account.org.reporting_currency
    now = timezone.now()
    rows = []
    for holding in holdings.values():
        try:
            price: Decimal | None = value_in(
                asset=holding.asset, quantity=Decimal(1), currency=currency
            ).rate
        except ConversionError:
            price = None
        rows.append(
            RewardSnapshot(
                account=account,
                strategy_id=holding.strategy_id,
                asset=holding.asset,
                taken_at=now,
                allocated=holding.allocated,
                in_transit=holding.in_transit,
                rewarded=holding.rewarded,
                price=price.quantize(Decimal(1).scaleb(-18)) if price is not None else None,
                currency=currency if price is not None else "",
            )
        )
    return RewardSnapshot.objects.bulk_create(rows)


def snapshots_take() -> int:
    """Beat: one snapshot per account with an Earn read key."""
    taken = 0
    for account in KrakenAccount.objects.select_related("org").filter(archived_at__isnull=True):
        try:
            earn.read_credential(account)
        except earn.EarnUnavailable:
            continue
        taken += len(snapshot_account(account))
    return taken


def rewards_digest_send(*, hours: int = 24) -> int:
    """Beat, daily: Kraken pays Earn rewards continuously (the sandbox accrues them by the
    second), so members hear once a day what was earned, per asset, instead of per payout."""
    from apps.orgs.models import Organization

    since = timezone.now() - timedelta(hours=hours)
    sent = 0
    for org in Organization.objects.all():
        earned: dict[str, Decimal] = {}
        snapshots = RewardSnapshot.objects.filter(account__org=org, taken_at__gte=since)
        firsts: dict[tuple[int, str], Decimal] = {}
        lasts: dict[tuple[int, str], tuple[str, Decimal]] = {}
        for snap in snapshots.order_by("taken_at", "id"):
            key = (snap.account_id, snap.strategy_id)
            firsts.setdefault(key, snap.rewarded)
            lasts[key] = (snap.asset, snap.rewarded)
        for key, (asset, last) in lasts.items():
            gained = last - firsts[key]
            if gained > 0:
                earned[asset] = earned.get(asset, Decimal(0)) + gained
        if not earned:
            continue
        members = Membership.objects.filter(org=org)
        user_ids = [m.user_id for m in members if m.can(Capability.REQUEST_FUNDING)]
        body = ", ".join(
            f"{amount.normalize():f} {asset}" for asset, amount in sorted(earned.items())
        )
        with transaction.atomic(durable=True):
            notify(
                org=org,
                user_ids=user_ids,
                kind="staking.rewards",
                title=f"Earn rewards in the last {hours} hours",
                body=body,
                link=f"/o/{org.slug}/staking/",
            )
        sent += 1
    return sent
