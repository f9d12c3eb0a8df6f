from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.orgs.countries import COUNTRY_NAMES, US_STATE_NAMES
from apps.orgs.permissions import Capability, Role, role_can
from apps.orgs.validators import validate_asset_code, validate_kraken_account_id, validate_time_zone

# Kraken verification tiers (the keys of apps.kraken.ratelimit.TIERS, which a test keeps equal):
# they set the rate limits of the master account and of every subaccount under it.
TIER_CHOICES = (("starter", "Starter"), ("intermediate", "Intermediate"), ("pro", "Pro"))


class Organization(models.Model):
    """An institution: the unit that owns Kraken accounts, members, policies and the audit trail."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    country = models.CharField(max_length=2, blank=True)
    require_2fa = models.BooleanField(
        default=True, help_text="Every member must use two-factor authentication."
    )
    # Values, limits and reports are shown in this asset (a normalised code: USD, EUR, BTC…).
    reporting_currency = models.CharField(
        max_length=16, default="USD", validators=[validate_asset_code]
    )
    # "Today" and every daily limit mean the business day in this IANA time zone.
    business_timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone]
    )
    # Off by default: a key that can do more than its use needs (withdraw on a trading key) is
    # refused. Only an owner, after a step-up, may turn this on (apps.orgs.services).
    allow_overprivileged_keys = models.BooleanField(
        default=False,
        help_text="Accept API keys that can do more than their use needs (e.g. withdraw on a "
        "trading key).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class KrakenAccount(models.Model):
    """One Kraken account of the organization: its master account or a subaccount under it.

    Every API key belongs to one account; what Kraken counts per account (the matching-engine
    counter per pair, balances, orders) is kept per account here too. The verification tier is
    the master's, and its subaccounts share it (Kraken: "Master accounts and subaccounts share
    the same default trading rate limits as determined by the master account's tier").
    Kraken's API does not say which account a key acts on, so the account id (IIBAN) is entered
    by an owner. Accounts are archived, never deleted: keys and history point at them.
    """

    class Kind(models.TextChoices):
        MASTER = "master", "Master account"
        SUBACCOUNT = "subaccount", "Subaccount"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="kraken_accounts")
    label = models.CharField(max_length=80)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    kraken_id = models.CharField(
        "Kraken account id (IIBAN)",
        max_length=16,
        blank=True,
        validators=[validate_kraken_account_id],
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="subaccounts"
    )
    # Only on the master: subaccounts read it through `tier`.
    verification_tier = models.CharField(max_length=16, choices=TIER_CHOICES, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("org", "parent_id", "label", "id")
        constraints = (
            # One (live) master per organization: "the" master is never a guess.
            models.UniqueConstraint(
                fields=("org",),
                condition=Q(kind="master", archived_at__isnull=True),
                name="orgs_one_master_account_per_org",
            ),
            # A Kraken account is registered once, or two rows would keep two rate counters.
            models.UniqueConstraint(
                fields=("kraken_id",),
                condition=Q(archived_at__isnull=True) & ~Q(kraken_id=""),
                name="orgs_kraken_account_id_once",
            ),
            models.UniqueConstraint(
                fields=("org", "label"),
                condition=Q(archived_at__isnull=True),
                name="orgs_kraken_account_label_once",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="master", parent__isnull=True) & ~Q(verification_tier="")
                    | Q(kind="subaccount", parent__isnull=False, verification_tier="")
                ),
                name="orgs_kraken_account_shape",
            ),
        )

    def __str__(self) -> str:
        return self.label

    @property
    def is_master(self) -> bool:
        return self.kind == self.Kind.MASTER

    @property
    def is_active(self) -> bool:
        return self.archived_at is None

    @property
    def master(self) -> KrakenAccount:
        return self if self.parent is None else self.parent

    @property
    def tier(self) -> str:
        """The verification tier that sets this account's rate limits: the master's."""
        return self.master.verification_tier

    def get_tier_display(self) -> str:
        return dict(TIER_CHOICES).get(self.tier, self.tier)

    @property
    def counter_ref(self) -> str:
        """The scope of the counters Kraken keeps per account (apps.kraken.ratelimit)."""
        return f"acct:{self.pk}"


class ActiveMembershipManager(models.Manager["Membership"]):
    """Only current members. The default manager, so every selector, access check, socket and
    count treats a removed member as a non-member without having to remember to; the rows that
    must also see removed memberships (re-invitation, the removal itself) use `all_objects`.
    Foreign keys to a membership (a credential's owner) still reach removed rows, because
    Django follows them with the plain base manager."""

    def get_queryset(self) -> models.QuerySet[Membership]:
        return super().get_queryset().filter(status=Membership.Status.ACTIVE)


class Membership(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        # Kept, not deleted: the member's keys, audit trail and orders still point at the row.
        REMOVED = "removed", "Removed"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ActiveMembershipManager()
    all_objects = models.Manager["Membership"]()

    class Meta:
        constraints = (models.UniqueConstraint(fields=("org", "user"), name="membership_unique"),)
        ordering = ("org", "user__email")

    def __str__(self) -> str:
        return f"{self.user} in {self.org} as {self.role}"

    def can(self, capability: Capability) -> bool:
        return self.is_active and role_can(self.role, capability)

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Invitation(models.Model):
    """An emailed, single-use link that makes its holder a member with the chosen role."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = (
            # One live invitation per address and organization.
            models.UniqueConstraint(
                fields=("org", "email"),
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_email",
            ),
        )

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.org} as {self.role}"


class BusinessType(models.TextChoices):
    HEDGE_FUND = "hedge_fund", "Hedge fund"
    ASSET_MANAGER = "asset_manager", "Asset manager"
    FAMILY_OFFICE = "family_office", "Family office"
    PROPRIETARY_TRADING = "proprietary_trading", "Proprietary trading firm"
    CORPORATE_TREASURY = "corporate_treasury", "Corporate treasury"
    BANK_BROKER = "bank_broker", "Bank / broker"
    OTHER = "other", "Other"


class AssetsUnderManagement(models.TextChoices):
    UNDER_10M = "lt_10m", "Less than $10M"
    FROM_10M_TO_50M = "10m_50m", "$10M to $50M"
    FROM_50M_TO_250M = "50m_250m", "$50M to $250M"
    FROM_250M_TO_1B = "250m_1b", "$250M to $1B"
    OVER_1B = "gt_1b", "More than $1B"


class OnboardingApplication(models.Model):
    """Kraken Institutional's sign-up form; staff review it in a queue."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    company_name = models.CharField(max_length=200)
    country = models.CharField(max_length=2)
    region = models.CharField(max_length=64, blank=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField()
    business_type = models.CharField(max_length=32, choices=BusinessType.choices)
    assets_under_management = models.CharField(max_length=32, choices=AssetsUnderManagement.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    org = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Why staff rejected it (required for a rejection; on the audit trail too), and whether the
    # applicant was told that reason in the decision email (compliance reasons often are not).
    rejection_reason = models.TextField(max_length=1000, blank=True)
    reason_told_applicant = models.BooleanField(default=False)

    class Meta:
        ordering = ("created_at",)

    def __str__(self) -> str:
        return f"{self.company_name} ({self.get_status_display()})"

    @property
    def country_name(self) -> str:
        """ "United Kingdom", not "GB"; "Texas, United States", not "US-TX"."""
        country = COUNTRY_NAMES.get(self.country, self.country)
        if self.country == "US" and self.region:
            return f"{US_STATE_NAMES.get(self.region, self.region)}, {country}"
        return country
