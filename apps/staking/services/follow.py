"""Following a request at Kraken: the exchange's result hooks, the status call while it is
pending, Allocations while it bonds or unbonds, and the beat that restarts lost follow-ups."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.exchange.models import Operation, State
from apps.kraken.errors import KrakenError
from apps.orgs.models import KrakenAccount
from apps.staking import earn
from apps.staking.models import StakeRequest
from apps.staking.services.common import (
    NOT_PLACED,
    Direction,
    Status,
    kraken_message,
    lock_poll_seconds,
    poll_seconds,
)
from apps.staking.services.requests import _finish, _start_next, balances_current
from apps.staking.services.rewards import snapshot_account


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
    # A request still `sending` whose operation settled long ago: its hook did not run (the
    # process died between the operation's commit and the hook). Run it now.
    hooks = {
        State.DONE: on_operation_done,
        State.REJECTED: on_operation_refused,
        State.NOT_PLACED: on_operation_not_placed,
    }
    for row in StakeRequest.objects.select_related("operation").filter(
        status=Status.SENDING, operation__settled_at__lt=overdue
    ):
        if row.operation is not None and row.operation.state in hooks:
            hooks[State(row.operation.state)](row.operation)
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
            if approval is None:
                error = "The approval request is gone."
            elif approval.status == ApprovalRequest.Status.FAILED:
                error = f"Approved, but it could not be sent: {approval.error}"
            else:
                error = f"The approval request was {approval.get_status_display().lower()}."
            with transaction.atomic(durable=True):
                _finish(
                    row,
                    to=Status.CANCELLED,
                    from_states=(Status.AWAITING_APPROVAL,),
                    error=error,
                )
            touched += 1
    return touched
