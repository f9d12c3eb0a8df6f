from __future__ import annotations

from django.db import models
from django.db.models import Q

from apps.orgs.models import KrakenAccount, Membership, Organization


class Use(models.TextChoices):
    TRADING = "trading", "Trading"
    FUNDING = "funding", "Funding"
    READ_ONLY = "read_only", "Read only"


class Permission(models.TextChoices):
    """Kraken's API-key permission switches, as the probe detects them."""

    QUERY_FUNDS = "query_funds", "Query funds"
    QUERY_OPEN = "query_open", "Query open orders & trades"
    QUERY_CLOSED = "query_closed", "Query closed orders & trades"
    QUERY_LEDGER = "query_ledger", "Query ledger entries"
    TRADE = "trade", "Create & modify orders"
    DEPOSIT = "deposit", "Deposit funds"
    WITHDRAW = "withdraw", "Withdraw funds"
    EARN = "earn", "Earn (allocate & deallocate)"
    WEBSOCKET = "websocket", "WebSocket interface"


def mask_api_key(api_key: str) -> str:
    """First four and last four characters: enough to recognise a key, not to use it."""
    if len(api_key) <= 12:
        return "…"
    return f"{api_key[:4]}…{api_key[-4:]}"


class Credential(models.Model):
    """A Kraken API key pair on one of the organization's Kraken accounts, stored by a member.
    The secret is stored only sealed (apps.vault.crypto).

    A key is personal (its member acts through it) or *designated*: the one key of the
    organization that unattended work (streams, finders, approved withdrawals and transfers,
    workflow runs, the kill switch) uses for its account and use, set by an owner or admin.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        # The owner's role no longer allows the key's use (demoted or removed): it may only
        # cancel that member's open orders, and serve the organization's kill switch, until
        # nothing of theirs is open (the trading work then revokes it).
        CANCEL_ONLY = "cancel_only", "Cancel only"
        # The permission check found the key can do more than its use needs and the
        # organization does not allow that: its sealed secret is destroyed, as on revocation.
        REFUSED = "refused", "Refused"
        REVOKED = "revoked", "Revoked"

    class ProbeStatus(models.TextChoices):
        NOT_CHECKED = "not_checked", "Not checked"
        PENDING = "pending", "Checking…"
        RUNNING = "running", "Checking…"
        DONE = "done", "Checked"
        FAILED = "failed", "Check failed"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="credentials")
    # RESTRICT: a membership is never deleted while it has keys (removal keeps the row), yet
    # deleting the whole organization still takes both.
    owner = models.ForeignKey(Membership, on_delete=models.RESTRICT, related_name="credentials")
    label = models.CharField(max_length=80)
    api_key = models.CharField(max_length=128)
    # The Kraken account (master or subaccount) the key acts on: its rate counters and tier.
    account = models.ForeignKey(KrakenAccount, on_delete=models.PROTECT, related_name="credentials")
    use = models.CharField(max_length=16, choices=Use.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # The organization's key for unattended work on this account and use (was "shared desk key").
    designated = models.BooleanField(default=False)

    # Sealed material (apps.vault.crypto.Sealed). Empty until the row has its id, and wiped
    # again on revocation.
    kek_id = models.CharField(max_length=32, blank=True)
    wrapped_key = models.BinaryField(default=b"", editable=False)
    secret_ciphertext = models.BinaryField(default=b"", editable=False)
    otp_ciphertext = models.BinaryField(null=True, blank=True, editable=False)

    # {permission: true | false | null}: granted, denied, or not determined by the last probe.
    permissions = models.JSONField(default=dict, blank=True)
    probe_status = models.CharField(
        max_length=16, choices=ProbeStatus.choices, default=ProbeStatus.PENDING
    )
    probe_started_at = models.DateTimeField(null=True, blank=True)
    permissions_checked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    # Why the key is in its state, shown to its owner and to the organization's overseers:
    # why it became cancel-only or was refused, or why it was kept although it can do more
    # than its use needs (the organization allows it).
    status_reason = models.CharField(max_length=300, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = (
            # One active personal key per member, account and use, so "which key trades on this
            # account" is never a guess; a member may hold keys for several accounts.
            models.UniqueConstraint(
                fields=("owner", "account", "use"),
                condition=Q(status="active", designated=False),
                name="vault_one_active_personal_key_per_account_use",
            ),
            # One active designated key per account and use: unattended work's only key.
            models.UniqueConstraint(
                fields=("account", "use"),
                condition=Q(status="active", designated=True),
                name="vault_one_designated_key_per_account_use",
            ),
            # A key pair shared by two rows would race itself for nonces.
            models.UniqueConstraint(
                fields=("org", "api_key"),
                condition=Q(status="active"),
                name="vault_active_api_key_once_per_org",
            ),
        )

    def __str__(self) -> str:
        return f"{self.label} ({self.masked_key})"

    @property
    def masked_key(self) -> str:
        return mask_api_key(self.api_key)

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def is_cancel_only(self) -> bool:
        return self.status == self.Status.CANCEL_ONLY

    @property
    def probe_in_progress(self) -> bool:
        return self.probe_status in {self.ProbeStatus.PENDING, self.ProbeStatus.RUNNING}
