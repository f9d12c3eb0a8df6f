"""The (de)allocation form: it shows the service's messages next to the fields; the rules are the
service's (apps.staking.services)."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.orgs.models import KrakenAccount
from apps.staking.models import StakeRequest


class StakeRequestForm(forms.Form):
    account = forms.ModelChoiceField(queryset=KrakenAccount.objects.none(), label="Account")
    strategy_id = forms.CharField(max_length=64, label="Strategy")
    direction = forms.ChoiceField(choices=StakeRequest.Direction.choices, label="Action")
    amount = forms.DecimalField(
        max_digits=38, decimal_places=18, min_value=0, label="Amount (in the strategy's asset)"
    )

    def __init__(self, *args: Any, accounts: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["account"]
        if isinstance(field, forms.ModelChoiceField):
            field.queryset = accounts if accounts is not None else KrakenAccount.objects.none()
