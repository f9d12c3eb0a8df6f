"""Exchange operations: one row per intended non-idempotent Kraken call, and its history.

An operation moves PREPARED → SENDING → DONE | REJECTED | UNKNOWN, and an UNKNOWN one (or a
SENDING one whose worker died) is resolved by the reconciler to DONE or NOT_PLACED by finding it
on Kraken through its reference; it is never sent twice (../shared/ARCHITECTURE.md §1).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.orgs.models import Organization
from apps.vault.models import Credential


class Kind(models.TextChoices):
    """The Kraken method an operation calls (its value is the method's name on the wire)."""

    ADD_ORDER = "AddOrder", "Add order"
    AMEND_ORDER = "AmendOrder", "Amend order"
    CANCEL_ORDER = "CancelOrder", "Cancel order"
    CANCEL_ALL = "CancelAll", "Cancel all orders"
    WITHDRAW = "Withdraw", "Withdrawal"
    WITHDRAW_CANCEL = "WithdrawCancel", "Withdrawal cancellation"
    ACCOUNT_TRANSFER = "AccountTransfer", "Account transfer"
    EARN_ALLOCATE = "Earn/Allocate", "Earn allocation"
    EARN_DEALLOCATE = "Earn/Deallocate", "Earn deallocation"


class State(models.TextChoices):
    PREPARED = "prepared", "Prepared"
    SENDING = "sending", "Sending"
    DONE = "done", "Done"
    REJECTED = "rejected", "Rejected"
    UNKNOWN = "unknown", "Unknown"
    NOT_PLACED = "not_placed", "Not placed"


# Not settled: the operation may still act on Kraken, or nobody knows yet whether it did.
UNSETTLED: frozenset[str] = frozenset({State.PREPARED, State.SENDING, State.UNKNOWN})
SETTLED: frozenset[str] = frozenset({State.DONE, State.REJECTED, State.NOT_PLACED})


class Operation(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="operations")
    # The key that sends it (and that the finders read with). PROTECT: an operation's history
    # must survive the key's deletion, so a key with operations is revoked, not deleted.
    credential = models.ForeignKey(Credential, on_delete=models.PROTECT, related_name="operations")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # The request as sent to Kraken (Decimals as strings). Never a secret: operation_prepare
    # refuses otp/nonce/secret parameters.
    params = models.JSONField(default=dict)
    # What identifies the call afterwards: cl_ord_id for AddOrder; for calls without one the
    # fields the finder matches on (asset, destination, amount, strategy...).
    reference = models.JSONField(default=dict)
    validate_only = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PREPARED)
    # Kraken's result (DONE), or what the finder found (DONE after UNKNOWN).
    result = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    # Reconciliation: how often the finder looked, how many looks found nothing (counted only
    # when spaced out, see services.reconcile), and a lease so two reconcilers never overlap.
    reconcile_attempts = models.PositiveIntegerField(default=0)
    reconcile_misses = models.PositiveIntegerField(default=0)
    last_miss_at = models.DateTimeField(null=True, blank=True)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    reconcile_note = models.CharField(max_length=300, blank=True)
    reconcile_lease_until = models.DateTimeField(null=True, blank=True)
    # "<kind group>:<scope>" for the calls Kraken cannot tell apart afterwards; at most one
    # such operation per key is unsettled (constraint below). Empty for the others.
    in_flight_key = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(
                fields=("state", "updated_at"),
                condition=Q(state__in=["prepared", "sending", "unknown"]),
                name="exchange_op_unsettled",
            ),
            models.Index(fields=("org", "-created_at"), name="exchange_op_org_recent"),
        )
        constraints = (
            # A withdrawal, a transfer or an Earn call carries no id of ours that Kraken
            # echoes: the finder recognises it by what it did (destination, amount, time). Two
            # alike in flight at once could not be told apart, so there is at most one.
            models.UniqueConstraint(
                fields=("in_flight_key",),
                condition=Q(state__in=["prepared", "sending", "unknown"]) & ~Q(in_flight_key=""),
                name="exchange_one_alike_operation_in_flight",
            ),
        )

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

    @property
    def is_settled(self) -> bool:
        return self.state in SETTLED

    @property
    def queue(self) -> str:
        return queue_for(self.kind)


ORDER_KINDS: frozenset[str] = frozenset(
    {Kind.ADD_ORDER, Kind.AMEND_ORDER, Kind.CANCEL_ORDER, Kind.CANCEL_ALL}
)


def queue_for(kind: str) -> str:
    """Trading calls go to the `orders` queue, money movements and Earn to `funding`, so a
    burst of withdrawals never delays a cancel."""
    return "orders" if kind in ORDER_KINDS else "funding"


class OperationEvent(models.Model):
    """One step of an operation's history: a state change, or a reconciliation look."""

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=16, choices=State.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=State.choices)
    message = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.operation_id}: {self.from_state or '∅'} → {self.to_state}"
