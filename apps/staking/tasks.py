"""Thin tasks: ids in, one service call. The follow-up only reads Kraken and moves the request
with conditional updates (it claims its look by sequence number), so running one twice is
harmless: acks_late."""

from __future__ import annotations

from celery import shared_task

from apps.staking import services


@shared_task(name="apps.staking.tasks.stake_request_follow_task", acks_late=True)
def stake_request_follow_task(request_id: int, seq: int) -> None:
    services.stake_request_follow(request_id=request_id, seq=seq)


@shared_task(name="apps.staking.tasks.stake_requests_follow_due_task", ignore_result=True)
def stake_requests_follow_due_task() -> int:
    return services.stake_requests_follow_due()


@shared_task(name="apps.staking.tasks.reward_snapshots_task", ignore_result=True)
def reward_snapshots_task() -> int:
    return services.snapshots_take()


@shared_task(name="apps.staking.tasks.rewards_digest_task", ignore_result=True)
def rewards_digest_task() -> int:
    return services.rewards_digest_send()
