from __future__ import annotations

from typing import Any

from django import forms

from apps.notifications.kinds import notification_kinds


class PreferencesForm(forms.Form):
    """One checkbox per registered kind: email on or off (in-app notifications always arrive)."""

    email = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: forms.MultipleChoiceField = self.fields["email"]  # type: ignore[assignment]
        field.choices = [
            (kind.key, f"{kind.label} (always emailed)" if kind.email_required else kind.label)
            for kind in notification_kinds()
        ]
