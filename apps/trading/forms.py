"""The order ticket and the amend form. They parse what was typed; the rules (rules.py, run
again by the services) decide, and the forms show the rules' messages next to each field."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django import forms

from apps.orgs.models import KrakenAccount, Membership
from apps.trading.models import FeeCurrency, OrderType, Side, TimeInForce, Trigger
from apps.trading.rules import Check, Ticket

QUANTITY_IN = (("base", "Base"), ("quote", "Quote"))
CLOSE_TYPES = [("", "No conditional close")] + [
    (value, label)
    for value, label in OrderType.choices
    if value in ("limit", "stop-loss", "take-profit", "stop-loss-limit", "take-profit-limit")
]


class TicketForm(forms.Form):
    account = forms.ModelChoiceField(queryset=KrakenAccount.objects.none(), label="Account")
    pair = forms.CharField(label="Pair", max_length=32)
    side = forms.ChoiceField(choices=Side.choices, label="Side", widget=forms.RadioSelect)
    order_type = forms.ChoiceField(choices=OrderType.choices, label="Order type")
    quantity = forms.DecimalField(
        label="Quantity",
        max_digits=30,
        decimal_places=18,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    quantity_in = forms.ChoiceField(
        choices=QUANTITY_IN, label="Quantity in", initial="base", widget=forms.RadioSelect
    )
    price = forms.CharField(
        label="Price (or trigger)",
        required=False,
        max_length=40,
        help_text="Absolute (50000) or relative to the last trade (+100, -1.5%).",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    price2 = forms.CharField(
        label="Limit price (second price)",
        required=False,
        max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    trigger = forms.ChoiceField(
        choices=[("", "Kraken's default (last trade)"), *Trigger.choices],
        label="Trigger on",
        required=False,
    )
    time_in_force = forms.ChoiceField(
        choices=TimeInForce.choices, label="Time in force", initial=TimeInForce.GTC
    )
    expires_at = forms.DateTimeField(
        label="Expires at (good-till-date)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    post_only = forms.BooleanField(label="Post-only (maker only)", required=False)
    fee_currency = forms.ChoiceField(
        choices=FeeCurrency.choices, label="Fee currency", required=False
    )
    display_volume = forms.DecimalField(
        label="Visible quantity (iceberg)",
        required=False,
        max_digits=30,
        decimal_places=18,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    close_order_type = forms.ChoiceField(
        choices=CLOSE_TYPES, label="Conditional close", required=False
    )
    close_price = forms.CharField(label="Close price", required=False, max_length=40)
    close_price2 = forms.CharField(label="Close limit price", required=False, max_length=40)
    confirmed = forms.BooleanField(label="I confirm this order", required=False)
    submission = forms.CharField(
        required=False,
        max_length=64,
        widget=forms.HiddenInput,
    )

    def __init__(self, *args: Any, membership: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            # A new ticket, a new id: sending it twice places one order (services.order_submit).
            self.initial.setdefault("submission", secrets.token_hex(16))
        field = self.fields["account"]
        if not isinstance(field, forms.ModelChoiceField):
            raise TypeError("the account field is a ModelChoiceField")
        field.queryset = KrakenAccount.objects.filter(
            org_id=membership.org_id, archived_at__isnull=True
        ).order_by("kind", "label", "id")

    def ticket(self) -> Ticket:
        """The ticket from what parsed (call after is_valid(); fields that did not parse are
        left empty, and their own errors are already on the form)."""
        data = self.cleaned_data
        quantity = data.get("quantity")
        display = data.get("display_volume")
        return Ticket(
            account=data.get("account"),
            pair=str(data.get("pair") or "").strip(),
            side=str(data.get("side") or ""),
            order_type=str(data.get("order_type") or ""),
            quantity=quantity if isinstance(quantity, Decimal) else None,
            quantity_in=str(data.get("quantity_in") or "base"),
            price=str(data.get("price") or ""),
            price2=str(data.get("price2") or ""),
            trigger=str(data.get("trigger") or ""),
            time_in_force=str(data.get("time_in_force") or TimeInForce.GTC),
            expires_at=data.get("expires_at"),
            post_only=bool(data.get("post_only")),
            fee_currency=str(data.get("fee_currency") or ""),
            display_volume=display if isinstance(display, Decimal) else None,
            close_order_type=str(data.get("close_order_type") or ""),
            close_price=str(data.get("close_price") or ""),
            close_price2=str(data.get("close_price2") or ""),
            confirmed=bool(data.get("confirmed")),
            submission=str(data.get("submission") or ""),
        )

    def show(self, check: Check) -> None:
        """Put the rules' messages on the form, next to their fields."""
        for name, messages in check.errors.items():
            target = name if name in self.fields else None
            for message in messages:
                if target is not None and target in self.errors and message in self.errors[target]:
                    continue
                self.add_error(target, message)


class AmendForm(forms.Form):
    price = forms.CharField(label="New price", required=False, max_length=40)
    quantity = forms.DecimalField(
        label="New quantity", required=False, max_digits=30, decimal_places=18
    )


class KillSwitchForm(forms.Form):
    cancel_all = forms.BooleanField(
        label=(
            "Also cancel every open order on every account (Kraken's Cancel all, through each "
            "account's designated key: it cancels other programs' orders too)"
        ),
        required=False,
    )
    reason = forms.CharField(label="Reason", required=False, max_length=300)
    confirm = forms.BooleanField(label="I confirm: halt trading for the organization")
