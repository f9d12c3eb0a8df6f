from __future__ import annotations

from typing import Any

from django import forms

from apps.orgs.models import KrakenAccount, Membership
from apps.vault.models import Use
from apps.vault.policy import uses_for_role
from apps.vault.selectors import KEY_MANAGERS, credential_accounts
from apps.vault.validators import (
    PRIVATE_KEY_IS_API_KEY,
    clean_api_key,
    clean_otp,
    clean_secret,
)

_NO_AUTOFILL = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}


class CredentialForm(forms.Form):
    """Adding a key. Secret fields are PasswordInputs that never render their value back, not
    even when the form comes back with errors."""

    label = forms.CharField(max_length=80, help_text="A name you will recognise, e.g. “Desk BTC”.")
    api_key = forms.CharField(
        label="API key",
        max_length=200,
        widget=forms.TextInput(attrs=_NO_AUTOFILL),
        help_text="The public key Kraken shows as “API Key”.",
    )
    secret = forms.CharField(
        label="Private key",
        max_length=200,
        strip=False,
        widget=forms.PasswordInput(attrs={**_NO_AUTOFILL, "autocomplete": "new-password"}),
        help_text="Shown once by Kraken. It is encrypted here and never displayed again.",
    )
    otp = forms.CharField(
        label="Key password (2FA)",
        required=False,
        max_length=64,
        strip=False,
        widget=forms.PasswordInput(attrs={**_NO_AUTOFILL, "autocomplete": "new-password"}),
        help_text="Only if the key has a two-factor password set on Kraken.",
    )
    account = forms.ModelChoiceField(
        label="Kraken account",
        queryset=KrakenAccount.objects.none(),
        empty_label=None,
        help_text="The account or subaccount the key was created on at Kraken.",
        error_messages={"invalid_choice": "Choose one of the organization's Kraken accounts."},
    )
    use = forms.ChoiceField(
        label="Intended use",
        choices=Use.choices,
        help_text="Give the key on Kraken only the permissions this use needs.",
    )
    designated = forms.BooleanField(
        label="Designate for unattended work",
        required=False,
        help_text="The organization's key for this account and use: streams, reconciliation, "
        "approved withdrawals and scheduled work act through it, and members without their "
        "own key for it too (owners and admins).",
    )

    def __init__(self, *args: Any, membership: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        accounts = credential_accounts(membership=membership)
        self.fields["account"].queryset = accounts  # type: ignore[attr-defined]
        if len(accounts) != 1:
            self.fields["account"].empty_label = "Choose an account"  # type: ignore[attr-defined]
        # Only the uses the member's role has (the service refuses the others anyway).
        allowed = uses_for_role(membership.role)
        self.fields["use"].choices = [  # type: ignore[attr-defined]
            (value, label) for value, label in Use.choices if value in allowed
        ]
        if membership.role not in KEY_MANAGERS:
            del self.fields["designated"]

    def clean_api_key(self) -> str:
        return clean_api_key(self.cleaned_data["api_key"])

    def clean_secret(self) -> str:
        return clean_secret(self.cleaned_data["secret"])

    def clean_otp(self) -> str | None:
        return clean_otp(self.cleaned_data.get("otp"))

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        data = self.cleaned_data
        if data.get("api_key") and data.get("secret") and data["api_key"] == data["secret"]:
            self.add_error("secret", PRIVATE_KEY_IS_API_KEY)
        return cleaned
