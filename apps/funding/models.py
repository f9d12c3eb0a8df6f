"""Treasury records: the address book, withdrawals and transfers.

Kraken keeps balances, addresses and the money itself; these rows keep what the organization
decided about them (which destinations may be used, who asked for which movement, what the
approvers agreed to) and how each movement went (its exchange operation and Kraken's status).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.amounts import STORAGE_DECIMAL_PLACES, STORAGE_MAX_DIGITS


class Destination(models.Model):
    """A withdrawal destination of the organization: one of Kraken's withdrawal keys on one
    account (WithdrawAddresses), allow-listed for use in the portal through an approval
    (`funding.address`). Only an allow-listed destination can be chosen for a withdrawal.
    The address the key pointed to when it was allow-listed is kept: a withdrawal sends it
    with the key, so Kraken refuses a key re-pointed since."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        ALLOWED = "allowed", "Allow-listed"
        REFUSED = "refused", "Not approved"
        REMOVED = "removed", "Removed"

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(
        "orgs.KrakenAccount", on_delete=models.PROTECT, related_name="funding_destinations"
    )
    asset = models.CharField(max_length=16)  # Kraken's name as WithdrawAddresses gives it
    method = models.CharField(max_length=64, blank=True)
    key = models.CharField(max_length=120)  # Kraken's withdrawal key name
    address = models.CharField(max_length=200)  # what the key pointed to when requested
    verified = models.BooleanField(default=False)  # Kraken's verified state then
    label = models.CharField(max_length=80, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    approval = models.ForeignKey(
        "approvals.ApprovalRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    allowed_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("account_id", "asset", "key", "-id")
        constraints = (
            # One live entry per Kraken key (per account and asset): removed and refused ones
            # stay as history.
            models.UniqueConstraint(
                fields=("account", "asset", "key"),
                condition=Q(status__in=["pending", "allowed"]),
                name="funding_destination_live_once",
            ),
        )

    def __str__(self) -> str:
        return f"{self.key} ({self.asset}) on {self.account_id}"

    @property
    def is_allowed(self) -> bool:
        return self.status == self.Status.ALLOWED


class Withdrawal(models.Model):
    """One requested withdrawal: what was asked and approved (frozen), and how it went."""

    class Status(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "Waiting for approval"
        SUBMITTED = "submitted", "Sending to Kraken"  # the Withdraw operation is in flight
        PROCESSING = "processing", "Processing at Kraken"  # refid known, not final
        ON_HOLD = "on_hold", "On hold at Kraken"
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failed at Kraken"
        REFUSED = "refused", "Refused by Kraken"  # the operation was rejected
        NOT_SENT = "not_sent", "Not sent"  # not placed, or the approval could not execute
        REJECTED = "rejected", "Rejected"  # by an approver
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"
        VOIDED = "voided", "Voided"  # its destination was removed before it was sent

    # Still going somewhere: the approval, the operation, or Kraken's processing.
    OPEN = (
        Status.AWAITING_APPROVAL,
        Status.SUBMITTED,
        Status.PROCESSING,
        Status.ON_HOLD,
    )

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(
        "orgs.KrakenAccount", on_delete=models.PROTECT, related_name="funding_withdrawals"
    )
    destination = models.ForeignKey(
        Destination, on_delete=models.PROTECT, related_name="withdrawals"
    )
    asset = models.CharField(max_length=16)  # Kraken's name (XBT)
    method = models.CharField(max_length=64, blank=True)
    amount = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )
    # Frozen at request: the key and the address it pointed to, the preview, the maximum fee.
    key = models.CharField(max_length=120)
    address = models.CharField(max_length=200)
    fee_preview = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )
    amount_received_preview = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )
    max_fee = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )
    memo = models.CharField(max_length=200, blank=True)
    value = models.DecimalField(
        null=True, blank=True, max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )  # in `currency` at request
    currency = models.CharField(max_length=16, blank=True)
    rate = models.CharField(max_length=80, blank=True)
    status = models.CharField(
        max_length=24, choices=Status.choices, default=Status.AWAITING_APPROVAL
    )
    approval = models.ForeignKey(
        "approvals.ApprovalRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    operation = models.ForeignKey(
        "exchange.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancel_operation = models.ForeignKey(
        "exchange.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    refid = models.CharField(max_length=64, blank=True)
    kraken_status = models.CharField(max_length=16, blank=True)
    kraken_status_prop = models.CharField(max_length=16, blank=True)
    fee = models.DecimalField(
        null=True, blank=True, max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )  # as Kraken charged it
    txid = models.CharField(max_length=128, blank=True)
    error = models.CharField(max_length=500, blank=True)
    # None for an unattended run (a scheduled workflow): it acts through the designated key.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(max_length=64, blank=True)  # "" (a person) or "workflow:<id>"
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=("org", "status"), name="funding_withdrawal_status"),)
        constraints = (
            # One withdrawal per source (a workflow run's key): two workers running the same
            # requeued run cannot both send (withdrawal_request returns the one made).
            models.UniqueConstraint(
                fields=("org", "source"),
                condition=~Q(source=""),
                name="funding_withdrawal_source_once",
            ),
        )

    def __str__(self) -> str:
        return f"Withdrawal #{self.pk} {self.amount} {self.asset} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class Transfer(models.Model):
    """One transfer between the master account and a subaccount (AccountTransfer)."""

    class Status(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "Waiting for approval"
        SUBMITTED = "submitted", "Sending to Kraken"
        PENDING = "pending", "Pending at Kraken"  # followed through the ledger
        COMPLETE = "complete", "Complete"
        REFUSED = "refused", "Refused by Kraken"
        NOT_SENT = "not_sent", "Not sent"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    OPEN = (Status.AWAITING_APPROVAL, Status.SUBMITTED, Status.PENDING)

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    from_account = models.ForeignKey(
        "orgs.KrakenAccount", on_delete=models.PROTECT, related_name="funding_transfers_out"
    )
    to_account = models.ForeignKey(
        "orgs.KrakenAccount", on_delete=models.PROTECT, related_name="funding_transfers_in"
    )
    asset = models.CharField(max_length=16)
    amount = models.DecimalField(
        max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )
    memo = models.CharField(max_length=200, blank=True)
    value = models.DecimalField(
        null=True, blank=True, max_digits=STORAGE_MAX_DIGITS, decimal_places=STORAGE_DECIMAL_PLACES
    )
    currency = models.CharField(max_length=16, blank=True)
    rate = models.CharField(max_length=80, blank=True)
    status = models.CharField(
        max_length=24, choices=Status.choices, default=Status.AWAITING_APPROVAL
    )
    approval = models.ForeignKey(
        "approvals.ApprovalRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    operation = models.ForeignKey(
        "exchange.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    transfer_id = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=("org", "status"), name="funding_transfer_status"),)
        constraints = (
            # One transfer per source (a workflow run's key), as for withdrawals.
            models.UniqueConstraint(
                fields=("org", "source"),
                condition=~Q(source=""),
                name="funding_transfer_source_once",
            ),
        )

    def __str__(self) -> str:
        return f"Transfer #{self.pk} {self.amount} {self.asset} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class FundingPolicy(models.Model):
    """The organization's treasury settings that the approval policies do not hold: the margin
    added to Kraken's previewed fee to make the approved maximum fee (`max_fee`)."""

    org = models.OneToOneField("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    # 0.20 = the maximum fee is the previewed fee plus 20 %.
    fee_margin = models.DecimalField(max_digits=6, decimal_places=4, default=Decimal("0.20"))
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"funding policy of org {self.org_id}"
