"""Treasury tasks: thin, each calls one service. Scheduled in kraken_portal/celery.py."""

from __future__ import annotations

from celery import shared_task

from apps.funding.services import transfers_follow, withdrawals_follow


@shared_task(acks_late=True)
def withdrawals_follow_task() -> int:
    # Only reads Kraken and records what it says: running it twice is harmless.
    return withdrawals_follow()


@shared_task(acks_late=True)
def transfers_follow_task() -> int:
    return transfers_follow()


@shared_task(acks_late=True)
def balances_publish_task(account_id: int) -> None:
    # Renders and sends the current balances: running it twice only sends them twice.
    from apps.funding.live import balances_send

    balances_send(account_id)
