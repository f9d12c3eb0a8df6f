"""The audit trail's filter form (GET): dates are days in the reader's time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo
from typing import Any, cast

from django import forms

from apps.audit.selectors import AuditFilters

DATE_RANGE_REVERSED = "The end date is before the start date."


class AuditFilterForm(forms.Form):
    action = forms.CharField(
        required=False,
        max_length=64,
        label="Action",
        help_text="Start of the action name, e.g. “withdrawal.”",
    )
    actor = forms.ChoiceField(required=False, label="Actor")
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    target = forms.CharField(required=False, max_length=200, label="Target contains")

    def __init__(self, *args: Any, actors: list[str], tz: tzinfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tz = tz
        actor_field = cast(forms.ChoiceField, self.fields["actor"])
        actor_field.choices = [("", "Anyone"), *((email, email) for email in actors)]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", DATE_RANGE_REVERSED)
        return cleaned

    def filters(self) -> AuditFilters:
        """The cleaned form as selector filters; call only after `is_valid()` returned True."""
        data = self.cleaned_data
        since = until = None
        if data.get("since"):
            since = datetime.combine(data["since"], time.min, tzinfo=self.tz)
        if data.get("until"):
            # "To" is inclusive for the reader: up to the end of that day in their time zone.
            until = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=self.tz)
        return AuditFilters(
            action=data.get("action", "").strip(),
            actor=data.get("actor", ""),
            since=since,
            until=until,
            target=data.get("target", "").strip(),
        )
