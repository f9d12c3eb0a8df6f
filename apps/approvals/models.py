from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

from apps.orgs.permissions import Role

# Money values: 28 digits, 8 after the point.
MAX_DIGITS = 28
DECIMAL_PLACES = 8


class Policy(models.Model):
    """How requests of one kind are approved in one organization. Created lazily with the
    kind's defaults (apps.approvals.policies.policy_for)."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=64)
    # Tier thresholds are amounts in this currency (the organization's reporting currency when
    # the policy was written); a value in another currency is refused, never compared.
    currency = models.CharField(max_length=8, default="USD")
    expiry_hours = models.PositiveIntegerField(default=72)
    # Rolling 24-hour caps per asset: {"BTC": "2.5"} (decimal strings).
    velocity_caps = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = (models.UniqueConstraint(fields=("org", "kind"), name="policy_unique"),)

    def __str__(self) -> str:
        return f"{self.kind} policy of org {self.org_id}"


class PolicyTier(models.Model):
    """From `min_value` upwards (in the policy's currency), this many approvals by these roles."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="tiers")
    min_value = models.DecimalField(default=0, max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    approvals = models.PositiveSmallIntegerField(default=1)
    # Role names (apps.orgs.permissions.Role). A JSON list rather than PostgreSQL's array, so the
    # portal also runs on SQLite (make run's default).
    roles = models.JSONField(default=list)
    owner_required = models.BooleanField(default=False)

    class Meta:
        ordering = ("min_value",)
        constraints = (
            models.UniqueConstraint(fields=("policy", "min_value"), name="policy_tier_unique"),
        )

    def __str__(self) -> str:
        return f"from {self.min_value}: {self.approvals} of {', '.join(self.roles)}"


class ApprovalRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"
        EXECUTED = "executed", "Executed"
        FAILED = "failed", "Failed"

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=64)
    subject_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject_id = models.CharField(max_length=64, blank=True)
    # The subject's state when the current decisions were made; a different one voids them.
    fingerprint = models.CharField(max_length=64)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # What is being approved, frozen at request time (and the conversion rate used).
    summary = models.JSONField(default=dict)
    value = models.DecimalField(
        null=True, blank=True, max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES
    )
    currency = models.CharField(max_length=8, blank=True)
    asset = models.CharField(max_length=16, blank=True)
    amount = models.DecimalField(
        null=True, blank=True, max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES
    )
    # The requirement of the tier the value falls in; raised when the value rises.
    tier_min_value = models.DecimalField(
        default=0, max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES
    )
    required_approvals = models.PositiveSmallIntegerField()
    approver_roles = models.JSONField(default=list)  # role names, frozen from the tier
    owner_required = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    # A delayed request (a sole owner's loosening) runs no earlier than this.
    not_before = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=("org", "status"), name="approval_request_status"),)

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class Decision(models.Model):
    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    approver_role = models.CharField(max_length=16, choices=Role.choices)
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the subject changed after this decision: it no longer counts.
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("created_at", "id")
        constraints = (
            # Never the same person twice on the same version of a request.
            models.UniqueConstraint(
                fields=("request", "approver"),
                condition=Q(voided_at__isnull=True),
                name="decision_one_per_person",
            ),
        )

    def __str__(self) -> str:
        return f"{self.verdict} by {self.approver_id} on #{self.request_id}"


class ApprovalEvent(models.Model):
    """One line of a request's timeline."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=32)
    text = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"#{self.request_id} {self.action}"
