"""The blotters' filter form (GET): every choice comes from the organization's own accounts,
members and keys, and dates are days in the reader's time zone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, cast

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from apps.kraken.naming import pair_symbol
from apps.orgs.models import KrakenAccount
from apps.trading.selectors_blotter import EXTERNAL, ORDER_STATUSES, BlotterFilters

DATE_RANGE_REVERSED = "The end date is before the start date."
FILTER_FIELDS = ("account", "pair", "side", "member", "key", "status", "since", "until")


# Days a blotter or P&L range may name: far wider than any account's history, and narrow enough
# that "the day after" is always a date (9999-12-31 + 1 day overflowed into a 500).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
DAY_VALIDATORS = [
    MinValueValidator(FIRST_DAY, message="Choose a day from 2000 on."),
    MaxValueValidator(LAST_DAY, message="Choose a day before 2101."),
]


def day_field(label: str) -> forms.DateField:
    return forms.DateField(
        required=False,
        label=label,
        validators=DAY_VALIDATORS,
        widget=forms.DateInput(attrs={"type": "date"}),
    )


class BlotterFilterForm(forms.Form):
    account = forms.TypedChoiceField(required=False, label="Account", coerce=int, empty_value=None)
    pair = forms.ChoiceField(required=False, label="Pair")
    side = forms.ChoiceField(
        required=False, label="Side", choices=[("", "Both"), ("buy", "Buy"), ("sell", "Sell")]
    )
    member = forms.ChoiceField(required=False, label="Placed by")
    key = forms.TypedChoiceField(required=False, label="API key", coerce=int, empty_value=None)
    status = forms.ChoiceField(required=False, label="Status")
    since = day_field("From")
    until = day_field("To")

    def __init__(
        self,
        *args: Any,
        accounts: Sequence[KrakenAccount],
        pairs: Sequence[str],
        members: Sequence[tuple[int, str]],
        keys: Sequence[tuple[int, str]],
        statuses: Sequence[str] = ORDER_STATUSES,
        tz: tzinfo,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tz = tz

        def choices(name: str, values: list[tuple[Any, str]]) -> None:
            cast(forms.ChoiceField, self.fields[name]).choices = values

        choices("account", [("", "All accounts"), *((a.pk, a.label) for a in accounts)])
        # The market feed's pairs; a pair it does not list (the feed is down, or the pair was
        # delisted) is still accepted in any of Kraken's spellings, as its normalised symbol.
        known = list(pairs)
        asked = str(self.data.get("pair", "")) if self.is_bound else ""
        if asked:
            try:
                symbol = pair_symbol(asked)
            except ValueError:
                symbol = ""
            if symbol and symbol not in known:
                known.append(symbol)
            if symbol and asked != symbol:
                data = dict(self.data.items())
                data["pair"] = symbol
                self.data = data
        choices("pair", [("", "All pairs"), *((p, p) for p in known)])
        choices(
            "member",
            [("", "Anyone"), (EXTERNAL, "External (outside the portal)"), *members],
        )
        choices("key", [("", "Any key"), *keys])
        choices("status", [("", "Any status"), *((s, s.capitalize()) for s in statuses)])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", DATE_RANGE_REVERSED)
        return cleaned

    def filters(self) -> BlotterFilters:
        """The cleaned form as selector filters (after `is_valid()`; unbound: no filter)."""
        if not self.is_bound:
            return BlotterFilters()
        data = self.cleaned_data
        member = data.get("member") or None
        since = until = None
        if data.get("since"):
            since = datetime.combine(data["since"], time.min, tzinfo=self.tz)
        if data.get("until"):
            # "To" is inclusive for the reader: up to the end of that day in their time zone.
            until = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=self.tz)
        return BlotterFilters(
            account=data.get("account"),
            pair=data.get("pair", ""),
            side=data.get("side", ""),
            member=member if member in (None, EXTERNAL) else int(member),
            key=data.get("key"),
            status=data.get("status", ""),
            since=since,
            until=until,
        )

    def applied(self) -> dict[str, str]:
        """The filters as given (for the export's audit record and the page links)."""
        return {
            name: str(value) for name, value in self.data.items() if name in FILTER_FIELDS and value
        }
