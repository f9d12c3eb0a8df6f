"""Forms check input shape; the services hold the rules."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from apps.orgs.countries import US_STATES, country_choices
from apps.orgs.models import TIER_CHOICES, AssetsUnderManagement, BusinessType, KrakenAccount
from apps.orgs.permissions import Role
from apps.orgs.services.onboarding import SERVICE_UNAVAILABLE_REGION, UNAVAILABLE_US_STATES

STATE_REQUIRED = "Choose the state your business is in."
PASSWORDS_DIFFER = "The two passwords differ."


def role_choices(*, actor_role: str) -> list[tuple[str, str]]:
    """Only an owner may hand out the owner role."""
    return [
        (value, label)
        for value, label in Role.choices
        if actor_role == Role.OWNER or value != Role.OWNER
    ]


class InvitationForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args: Any, actor_role: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = role_choices(actor_role=actor_role)  # type: ignore[attr-defined]


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class AcceptAsNewUserForm(forms.Form):
    first_name = forms.CharField(max_length=150)
    last_name = forms.CharField(max_length=150)
    password1 = forms.CharField(
        label="Password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        max_length=128,
        strip=False,
    )
    password2 = forms.CharField(
        label="Password again",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        max_length=128,
        strip=False,
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        password1, password2 = data.get("password1"), data.get("password2")
        if password1 and password2:
            if password1 != password2:
                self.add_error("password2", PASSWORDS_DIFFER)
            else:
                user = get_user_model()(
                    email=self.email,
                    first_name=data.get("first_name", ""),
                    last_name=data.get("last_name", ""),
                )
                try:
                    validate_password(password1, user)
                except ValidationError as error:
                    self.add_error("password1", error)
        return data


class OrganizationSettingsForm(forms.Form):
    name = forms.CharField(max_length=200)
    require_2fa = forms.BooleanField(
        required=False,
        label="Require two-factor authentication for every member",
        help_text="Members without 2FA are asked to set it up before they can continue. "
        "Turning it off is an owner's decision that waits for a second owner's approval "
        "(a sole owner's waits 24 hours, and every owner may cancel it).",
    )
    # Left empty (or not posted) means unchanged.
    reporting_currency = forms.CharField(
        required=False,
        max_length=16,
        help_text="Values, limits and reports are shown in this asset, e.g. USD, EUR or BTC. "
        "Owners only; a change waits for a second owner's approval (a sole owner's waits 24 "
        "hours, and every owner may cancel it).",
    )
    business_timezone = forms.CharField(
        required=False,
        label="Business-day time zone",
        max_length=64,
        help_text="“Today” and every daily limit follow this time zone, e.g. Europe/London. "
        "Owners only.",
    )
    allow_overprivileged_keys = forms.BooleanField(
        required=False,
        label="Accept API keys that can do more than their use needs",
        help_text="Off: a key that can, say, withdraw although it is for trading is refused "
        "when its permissions are checked. Only an owner can change this; turning it on waits "
        "for a second owner's approval (a sole owner's waits 24 hours, and every owner may "
        "cancel it).",
    )

    def __init__(self, *args: Any, actor_role: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if actor_role != Role.OWNER:
            # Shown, so admins know the policy, but only an owner may change these; a disabled
            # field keeps its initial value whatever is posted for it.
            self.fields["allow_overprivileged_keys"].disabled = True
            self.fields["reporting_currency"].disabled = True
            self.fields["business_timezone"].disabled = True


class KrakenAccountForm(forms.Form):
    """Adding an account, or (with `instance`) editing one. Only owners get the id and tier."""

    label = forms.CharField(max_length=80, help_text="E.g. “Main account” or “Desk 2”.")
    kind = forms.ChoiceField(label="Account type", choices=KrakenAccount.Kind.choices)
    kraken_id = forms.CharField(
        label="Kraken account id (IIBAN)",
        required=False,
        max_length=32,
        help_text="16 letters and digits, shown on Kraken under Settings → Account. Kraken's "
        "API does not tell the portal which account a key belongs to.",
    )
    tier = forms.ChoiceField(
        label="Verification tier",
        required=False,
        choices=[("", "—"), *TIER_CHOICES],
        help_text="The master account's tier sets the rate limits of every key on it and on "
        "its subaccounts.",
    )

    def __init__(
        self, *args: Any, is_owner: bool, instance: KrakenAccount | None = None, **kwargs: Any
    ) -> None:
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "label": instance.label,
                    "kind": instance.kind,
                    "kraken_id": instance.kraken_id,
                    "tier": instance.verification_tier,
                },
            )
        super().__init__(*args, **kwargs)
        self.instance = instance
        if instance is not None:
            del self.fields["kind"]
            if not instance.is_master:
                del self.fields["tier"]
        if not is_owner:
            self.fields.pop("kraken_id")
            self.fields.pop("tier", None)
            if "kind" in self.fields:
                # Only an owner adds the master (it carries the tier).
                self.fields["kind"].choices = [  # type: ignore[attr-defined]
                    (KrakenAccount.Kind.SUBACCOUNT, KrakenAccount.Kind.SUBACCOUNT.label)
                ]


class OnboardingForm(forms.Form):
    company_name = forms.CharField(max_length=200)
    # A callable, so the order is the reader's language's at each rendering.
    country = forms.ChoiceField(label="Country of business", choices=country_choices)
    region = forms.ChoiceField(
        label="US state",
        choices=[("", "—"), *US_STATES],
        required=False,
        help_text="Only for businesses in the United States.",
    )
    first_name = forms.CharField(max_length=100)
    last_name = forms.CharField(max_length=100)
    email = forms.EmailField(label="Work email", max_length=254)
    business_type = forms.ChoiceField(
        label="Type of business", choices=[("", "Select"), *BusinessType.choices]
    )
    assets_under_management = forms.ChoiceField(
        label="Assets under management", choices=[("", "Select"), *AssetsUnderManagement.choices]
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        country, region = data.get("country"), data.get("region", "")
        if country == "US":
            if not region:
                self.add_error("region", STATE_REQUIRED)
            elif region in UNAVAILABLE_US_STATES:
                raise ValidationError(SERVICE_UNAVAILABLE_REGION)
        else:
            data["region"] = ""
        return data


class OnboardingRejectForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded on the application and the audit trail.",
    )
    tell_applicant = forms.BooleanField(
        label="Tell the applicant this reason in the decision email",
        required=False,
        help_text="Leave unticked for compliance reasons: the email then gives none.",
    )
