"""Treasury forms. They collect and show; the rules (amounts, destinations, balances) are the
services', whose messages land next to the field they are about."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from apps.funding.models import Destination
from apps.funding.selectors import destinations_allowed, funding_accounts
from apps.funding.services.common import field_errors
from apps.orgs.models import KrakenAccount, Organization


class AccountChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: KrakenAccount) -> str:
        return f"{obj.label} ({obj.get_kind_display().lower()})"


class DestinationChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Destination) -> str:
        name = obj.label or obj.key
        return f"{name} — {obj.asset} {obj.address} ({obj.account.label})"


class ServiceErrorsMixin(forms.Form):
    def add_service_errors(self, error: ValidationError) -> None:
        for name, messages in field_errors(error).items():
            field = name if name in self.fields else None
            for message in messages:
                self.add_error(field, message)


class WithdrawalForm(ServiceErrorsMixin):
    account = AccountChoiceField(queryset=KrakenAccount.objects.none())
    asset = forms.CharField(max_length=16, help_text="As Kraken names it: BTC, ETH, USDC…")
    destination = DestinationChoiceField(
        queryset=Destination.objects.none(),
        help_text="Only allow-listed addresses of the chosen account can be used.",
        error_messages={
            "invalid_choice": (
                "Choose an allow-listed destination: this one is not (or no longer) on the "
                "address book."
            ),
            "required": "Choose an allow-listed destination.",
        },
    )
    amount = forms.CharField(
        max_length=60,
        help_text="Kraken deducts its fee from this amount.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    memo = forms.CharField(max_length=200, required=False)

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = funding_accounts(org=org)  # type: ignore[attr-defined]
        self.fields["destination"].queryset = destinations_allowed(org=org)  # type: ignore[attr-defined]


class TransferForm(ServiceErrorsMixin):
    from_account = AccountChoiceField(queryset=KrakenAccount.objects.none(), label="From")
    to_account = AccountChoiceField(queryset=KrakenAccount.objects.none(), label="To")
    asset = forms.CharField(max_length=16)
    amount = forms.CharField(
        max_length=60, widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})
    )
    memo = forms.CharField(max_length=200, required=False)

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("from_account", "to_account"):
            self.fields[name].queryset = funding_accounts(org=org)  # type: ignore[attr-defined]


class DestinationRequestForm(ServiceErrorsMixin):
    account = forms.IntegerField(widget=forms.HiddenInput)
    asset = forms.CharField(max_length=16, widget=forms.HiddenInput)
    key = forms.CharField(max_length=120, widget=forms.HiddenInput)
    label = forms.CharField(max_length=80, required=False)


class DepositAddressForm(forms.Form):
    """The deposit page's "new address" fields (kept across the step-up it asks for)."""

    account = forms.CharField(max_length=20, required=False)
    asset = forms.CharField(max_length=16)
    method = forms.CharField(max_length=64, required=False)
