"""Treasury writes. The two that scheduled funding workflows call are `withdrawal_request`
and `transfer_request` (see their docstrings)."""

from apps.funding.services.destinations import destination_remove, destination_request
from apps.funding.services.transfers import transfer_request, transfers_follow
from apps.funding.services.withdrawals import (
    withdrawal_cancel,
    withdrawal_preview,
    withdrawal_request,
    withdrawals_follow,
)

__all__ = [
    "destination_remove",
    "destination_request",
    "transfer_request",
    "transfers_follow",
    "withdrawal_cancel",
    "withdrawal_preview",
    "withdrawal_request",
    "withdrawals_follow",
]
