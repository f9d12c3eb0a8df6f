"""Staking with Kraken Earn: the team's (de)allocation requests and the reward snapshots.

A `StakeRequest` is one allocation or deallocation a member asked for on one Kraken account and
strategy. Its Kraken call is an exchange operation (apps.exchange: sent once, reconciled when its
answer is lost); the request follows it further, because Kraken's Allocate only queues the
work: the status call says when it is done, or reports a failure, and a bonded strategy then
bonds (or unbonds) for days. Strategies and allocations themselves are Kraken's; the portal
keeps only what it asked for and the snapshots it took.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.amounts import STORAGE_DECIMAL_PLACES, STORAGE_MAX_DIGITS
from apps.exchange.models import Operation
from apps.orgs.models import KrakenAccount, Organization


class StakeRequest(models.Model):
    class Direction(models.TextChoices):
        ALLOCATE = "allocate", "Allocate"
        DEALLOCATE = "deallocate", "Deallocate"

    class Status(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        # Another request on the same account and strategy is at Kraken: this one waits.
        QUEUED = "queued", "Queued"
        # The exchange operation is prepared or being sent (or its outcome is reconciled).
        SENDING = "sending", "Sending"
        # Kraken accepted it and is processing it (AllocateStatus/DeallocateStatus: pending).
        PENDING = "pending", "Pending at Kraken"
        BONDING = "bonding", "Bonding"
        UNBONDING = "unbonding", "Unbonding"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(KrakenAccount, on_delete=models.PROTECT, related_name="+")
    strategy_id = models.CharField(max_length=64)
    asset = models.CharField(max_length=16)  # Kraken's name of the strategy's asset (DOT)
    lock_type = models.CharField(max_length=16)  # flex | bonded | timed | instant
    direction = models.CharField(max_length=16, choices=Direction.choices)
    amount = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )
    # The amount's value when it was asked for, in `currency` (the approval policy's).
    value = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES, null=True, blank=True
    )
    currency = models.CharField(max_length=8, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=24, choices=Status.choices)
    operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approval_id = models.PositiveBigIntegerField(null=True, blank=True)
    # Set by unattended callers (a workflow run: "schedules.run:<id>"): asking again with the
    # same key returns this request instead of a second one.
    idempotency_key = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    # Bonding/unbonding: when Kraken says the lock ends, and its `expires` as Kraken wrote it
    # (how the lock is recognised in Allocations until it is gone).
    expected_end = models.DateTimeField(null=True, blank=True)
    lock_expires = models.CharField(max_length=40, blank=True)
    # The follow-up looks at Kraken: each carries the sequence number it was planned with, and
    # only the look holding the current number runs (a duplicated chain ends by itself).
    check_seq = models.PositiveIntegerField(default=0)
    next_check_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(fields=("org", "-created_at"), name="staking_request_org_recent"),
            models.Index(fields=("account", "strategy_id", "status"), name="staking_request_pair"),
        )
        constraints = (
            # Kraken runs one (de)allocation per account and strategy at a time, and its status
            # call cannot tell two apart: at most one of ours is at Kraken; the rest queue.
            models.UniqueConstraint(
                fields=("account", "strategy_id"),
                condition=Q(status__in=["sending", "pending"]),
                name="staking_one_request_at_kraken",
            ),
            models.UniqueConstraint(
                fields=("org", "idempotency_key"),
                condition=~Q(idempotency_key=""),
                name="staking_request_idempotency_key_once",
            ),
        )

    def __str__(self) -> str:
        return f"{self.direction} {self.amount} {self.asset} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status not in FINISHED


FINISHED: frozenset[str] = frozenset(
    {StakeRequest.Status.DONE, StakeRequest.Status.FAILED, StakeRequest.Status.CANCELLED}
)
AT_KRAKEN: frozenset[str] = frozenset({StakeRequest.Status.SENDING, StakeRequest.Status.PENDING})


class RewardSnapshot(models.Model):
    """What one account held in one strategy at one time, and the rewards so far: quantities
    and the price used, never only a converted total, so the chart can be redrawn in any
    currency the price allows and a wrong price can be seen."""

    account = models.ForeignKey(KrakenAccount, on_delete=models.CASCADE, related_name="+")
    strategy_id = models.CharField(max_length=64)
    asset = models.CharField(max_length=16)
    taken_at = models.DateTimeField()
    allocated = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )  # earning amount (Kraken's `allocated`, rewards included)
    in_transit = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES, default=0
    )  # pending + bonding + unbonding + exit queue
    rewarded = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )  # total_rewarded, native
    price = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES, null=True, blank=True
    )  # of one unit in `currency`, when it was known
    currency = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ("taken_at", "id")
        indexes = (models.Index(fields=("account", "taken_at"), name="staking_snapshot_time"),)

    def __str__(self) -> str:
        return f"{self.strategy_id} {self.rewarded} {self.asset} @ {self.taken_at}"
