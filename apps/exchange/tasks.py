"""Thin tasks: ids in, one service call. None of them asks Celery to retry itself: a send
happens at most once (the service claims its row), and an unknown outcome is the reconciler's,
not a retry's."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.exchange import key_check, services


@shared_task(name="apps.exchange.tasks.operation_send_task")
def operation_send_task(operation_id: int) -> str:
    operation = services.operation_send(operation_id=operation_id)
    return "nothing to claim" if operation is None else operation.state


# acks_late: reconciling only reads Kraken and moves the row with conditional updates under a
# lease, so running it twice is harmless and a worker killed mid-look loses nothing.
@shared_task(name="apps.exchange.tasks.operation_reconcile_task", acks_late=True)
def operation_reconcile_task(operation_id: int) -> str:
    return services.operation_reconcile(operation_id=operation_id).state


@shared_task(name="apps.exchange.tasks.operations_reconcile_due_task")
def operations_reconcile_due_task() -> int:
    return services.operations_reconcile_due()


@shared_task(name="apps.exchange.tasks.balance_snapshots_task")
def balance_snapshots_task() -> int:
    from apps.exchange.snapshots import balance_snapshots_take

    return balance_snapshots_take()


# acks_late: the check only reads Kraken (and sends a validate-only order in the fallback) and
# the vault claims it with a conditional update, so a redelivered message does nothing.
@shared_task(name="apps.exchange.tasks.credential_check_task", acks_late=True, ignore_result=True)
def credential_check_task(credential_id: int) -> dict[str, Any] | None:
    """Check a stored key's Kraken permissions (apps.exchange.key_check)."""
    return key_check.credential_check(credential_id=credential_id)


def credential_check_enqueue(credential_id: int) -> None:
    """The vault's key-check hook (apps.vault.hooks): the check runs in a worker."""
    credential_check_task.delay(credential_id)
