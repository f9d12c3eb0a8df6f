"""Forms for sign-in, second-factor codes and the profile. They validate shape only; the
services decide whether a password or code is right."""

from __future__ import annotations

import zoneinfo
from functools import cache

from django import forms

from apps.accounts.services import THEMES, TIME_ZONE_UNKNOWN, normalize_code
from apps.core.emails import email_normalize

CODE_REQUIRED = "Enter the 6-digit code from your authenticator app."
CODE_SHAPE = "Enter the 6-digit code from your app, or a recovery code."
TOTP_SHAPE = "Enter the 6-digit code from your authenticator app."


@cache
def time_zone_choices() -> list[tuple[str, str]]:
    names = sorted(zoneinfo.available_timezones() - {"localtime"})
    return [(name, name.replace("_", " ")) for name in names]


class SignInForm(forms.Form):
    email = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        label="Password",
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def clean_email(self) -> str:
        # The backend compares lower-cased addresses, and axes must count "A@x" and "a@x" as
        # the same account.
        return email_normalize(str(self.cleaned_data["email"]))


class CodeForm(forms.Form):
    """A 6-digit TOTP code or, if `allow_recovery`, an 8-character recovery code."""

    code = forms.CharField(
        label="Authentication code",
        max_length=32,
        error_messages={"required": CODE_REQUIRED},
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autofocus": True,
                "autocapitalize": "off",
                "spellcheck": "false",
                "size": 12,
            }
        ),
    )

    def __init__(self, *args: object, allow_recovery: bool = True, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.allow_recovery = allow_recovery
        if allow_recovery:
            self.fields["code"].help_text = "Or one of your recovery codes."
        else:
            self.fields["code"].widget.attrs["inputmode"] = "numeric"

    def clean_code(self) -> str:
        code = normalize_code(str(self.cleaned_data["code"]))
        is_totp = code.isdigit() and len(code) == 6
        is_recovery = len(code) == 8 and code.isalnum() and code.isascii()
        if is_totp or (self.allow_recovery and is_recovery):
            return code
        raise forms.ValidationError(CODE_SHAPE if self.allow_recovery else TOTP_SHAPE)


class ProfileForm(forms.Form):
    # A text box with suggestions (a <datalist> of the zone names) rather than a 600-option
    # <select>: quicker to type "Zur" than to scroll, and far cheaper to render.
    time_zone = forms.ChoiceField(
        label="Time zone",
        choices=time_zone_choices,
        error_messages={"invalid_choice": TIME_ZONE_UNKNOWN},
        help_text="Times across the portal are shown in this zone, e.g. Europe/Zurich.",
        widget=forms.TextInput(
            attrs={"list": "time-zones", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    theme = forms.ChoiceField(
        label="Theme",
        choices=[(theme, theme.capitalize()) for theme in THEMES],
        widget=forms.RadioSelect,
    )
