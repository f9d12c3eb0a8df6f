"""Workflows (what runs, when, within which caps) and their runs (one per slot, exactly once)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

# Money values: 28 digits, 8 after the point (as approvals and exchange).
MAX_DIGITS = 28
DECIMAL_PLACES = 8


def plain(value: Decimal | None) -> str:
    """A stored amount as it was meant: 2.5, not 2.50000000 (nor 1E+2)."""
    if value is None:
        return ""
    return format(value.normalize(), "f")


class Workflow(models.Model):
    class ScheduleKind(models.TextChoices):
        CRON = "cron", "Cron expression in a time zone"
        INTERVAL = "interval", "Fixed interval (anchored in UTC)"

    class ApprovalMode(models.TextChoices):
        EACH_RUN = "each_run", "Each run needs approval"
        ONCE = "once", "Approved once, within its caps"

    class CatchUp(models.TextChoices):
        SKIP = "skip", "Skip slots missed while the portal was down"
        RUN_ONCE = "run_once", "Run once for the slots missed while the portal was down"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        # Retired for good (never deleted: its runs stay for the audit trail).
        ARCHIVED = "archived", "Archived"

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    account = models.ForeignKey("orgs.KrakenAccount", on_delete=models.PROTECT, related_name="+")
    schedule_kind = models.CharField(
        max_length=16, choices=ScheduleKind.choices, default=ScheduleKind.CRON
    )
    cron = models.CharField(max_length=120, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    anchor = models.DateTimeField(null=True, blank=True)  # interval schedules: the first slot
    # The registered action (apps.schedules.registry) and its parameters, as JSON with amounts
    # as decimal strings ("0.5", never a float).
    action = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    # Caps in `cap_asset` (the action's asset): a run moves at most per_run_cap, and the runs of
    # one day (in the workflow's time zone) at most per_day_cap together.
    cap_asset = models.CharField(max_length=16)
    per_run_cap = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    per_day_cap = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    approval_mode = models.CharField(
        max_length=16, choices=ApprovalMode.choices, default=ApprovalMode.ONCE
    )
    # ONCE: the terms (services.workflow_terms_hash) an approved request approved. Any change to
    # the account, action, parameters (destination), caps or mode gives another hash, so the
    # approval no longer holds and runs wait until the new terms are approved.
    approved_terms = models.CharField(max_length=64, blank=True)
    approval_request = models.ForeignKey(
        "approvals.ApprovalRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    catch_up = models.CharField(max_length=16, choices=CatchUp.choices, default=CatchUp.SKIP)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    paused_reason = models.CharField(max_length=300, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    # The cursor the beat reads: the next slot not yet claimed. Indexed with the status, so the
    # tick finds the due workflows without scanning the others.
    next_slot = models.CharField(max_length=100, blank=True)
    next_slot_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # Who last set the terms (services.workflow_terms_hash): approvals of the workflow and of
    # its runs are asked in their name, so the person who set what moves money never approves it.
    terms_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        indexes = (
            models.Index(fields=("status", "next_slot_at"), name="workflow_due"),
            models.Index(fields=("org", "status"), name="workflow_org"),
        )

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def is_archived(self) -> bool:
        return self.status == self.Status.ARCHIVED

    @property
    def per_run_cap_text(self) -> str:
        return plain(self.per_run_cap)

    @property
    def per_day_cap_text(self) -> str:
        return plain(self.per_day_cap)

    @property
    def schedule_text(self) -> str:
        if self.schedule_kind == self.ScheduleKind.INTERVAL:
            return f"every {self.interval_minutes} min (UTC)"
        return f"{self.cron} ({self.timezone})"


class Run(models.Model):
    """One slot of one workflow. Created exactly once (the unique constraint on workflow and
    slot), then carried through the states below by services.run_* (each a conditional update,
    so a duplicated task finds nothing to do)."""

    class State(models.TextChoices):
        CREATED = "created", "Queued"
        RUNNING = "running", "Deciding"
        AWAITING_APPROVAL = "awaiting_approval", "Waiting for approval"
        EXECUTING = "executing", "Executing"
        SUCCEEDED = "succeeded", "Done"
        NOTHING_TO_DO = "nothing_to_do", "Nothing to do"
        BLOCKED = "blocked", "Not run"
        FAILED = "failed", "Failed"

    SETTLED = (State.SUCCEEDED, State.NOTHING_TO_DO, State.BLOCKED, State.FAILED)

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    # The slot's identity: local wall time and zone, "2026-03-29T01:30 Europe/London".
    slot = models.CharField(max_length=100)
    scheduled_at = models.DateTimeField()  # the instant the slot was due
    late = models.BooleanField(default=False)  # a catch-up run for slots missed while down
    state = models.CharField(max_length=20, choices=State.choices, default=State.CREATED)
    # What the action read (balances, prices, as strings) and what it decided.
    inputs = models.JSONField(default=dict, blank=True)
    decision = models.CharField(max_length=500, blank=True)
    amount = models.DecimalField(
        null=True, blank=True, max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES
    )
    asset = models.CharField(max_length=16, blank=True)
    # What the action created (a withdrawal request, an allocation): label, url, kind, id.
    reference = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=500, blank=True)
    approval_request = models.ForeignKey(
        "approvals.ApprovalRequest",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-scheduled_at", "-id")
        constraints = (
            models.UniqueConstraint(fields=("workflow", "slot"), name="run_once_per_slot"),
        )
        indexes = (
            models.Index(fields=("state", "updated_at"), name="run_state"),
            models.Index(fields=("workflow", "-scheduled_at"), name="run_workflow"),
        )

    def __str__(self) -> str:
        return f"{self.workflow_id} @ {self.slot} ({self.state})"

    @property
    def amount_text(self) -> str:
        return plain(self.amount)

    @property
    def is_settled(self) -> bool:
        return self.state in self.SETTLED


class RunEvent(models.Model):
    """One line of a run's progress, shown live on its page."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    state = models.CharField(max_length=20, choices=Run.State.choices)
    text = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.state}"
