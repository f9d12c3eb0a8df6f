"""Staking writes, by concern: `requests` (ask, queue, send, cancel), `follow` (the exchange's
result hooks and the looks at Kraken until the end), `approvals` (the two approval kinds) and
`rewards` (snapshots and the daily digest); `common` holds the messages and settings."""

from apps.staking.services.approvals import (
    approval_describe,
    approval_fingerprint,
    approval_handler,
)
from apps.staking.services.common import *  # noqa: F403 - the messages, for views and tests
from apps.staking.services.follow import (
    on_operation_done,
    on_operation_not_placed,
    on_operation_refused,
    stake_request_follow,
    stake_requests_follow_due,
)
from apps.staking.services.requests import (
    approval_needed,
    balances_current,
    stake_request_cancel,
    stake_request_create,
)
from apps.staking.services.rewards import rewards_digest_send, snapshot_account, snapshots_take

__all__ = [
    "approval_describe",
    "approval_fingerprint",
    "approval_handler",
    "approval_needed",
    "balances_current",
    "on_operation_done",
    "on_operation_not_placed",
    "on_operation_refused",
    "rewards_digest_send",
    "snapshot_account",
    "snapshots_take",
    "stake_request_cancel",
    "stake_request_create",
    "stake_request_follow",
    "stake_requests_follow_due",
]
