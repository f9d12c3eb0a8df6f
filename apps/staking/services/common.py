"""What staking tells members (module constants, so tests assert on them), Kraken's refusals
in words, and the follow-up's timing settings."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings

from apps.exchange.models import Kind
from apps.staking.models import StakeRequest

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
ALREADY_ASKED = "This was asked already; here is the request it made."
NOT_PREAPPROVED = "The approval given for this is not an approved request of this organization."
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
