from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms

from apps.approvals.policy_changes import PolicySpec
from apps.approvals.registry import TierSpec
from apps.orgs.permissions import Role

TIERS_HELP = (
    "One tier per line: threshold; approvals; roles (comma-separated); owner (yes/no). "
    "Example: 0; 1; owner,approver; no"
)
BAD_TIER = "Line {n}: write threshold; approvals; roles; owner (yes or no)."
BAD_ROLE = "Line {n}: {role!r} is not a role (choose from {roles})."
BAD_CAP = "Write caps as ASSET=amount, separated by commas (e.g. BTC=2.5, ETH=40)."


class DecisionForm(forms.Form):
    verdict = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    fingerprint = forms.CharField(max_length=64, widget=forms.HiddenInput)


def _decimal(text: str) -> Decimal:
    value = Decimal(text.strip())
    if not value.is_finite() or value < 0:
        raise InvalidOperation
    return value


class PolicyForm(forms.Form):
    currency = forms.CharField(max_length=8)
    expiry_hours = forms.IntegerField(min_value=1, max_value=24 * 30)
    velocity_caps = forms.CharField(required=False, help_text="ASSET=amount, comma-separated.")
    tiers = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), help_text=TIERS_HELP)

    @staticmethod
    def initial_from(spec: PolicySpec) -> dict[str, Any]:
        return {
            "currency": spec.currency,
            "expiry_hours": spec.expiry_hours,
            "velocity_caps": ", ".join(f"{k}={v}" for k, v in spec.velocity_caps.items()),
            "tiers": "\n".join(
                f"{t.min_value.normalize():f}; {t.approvals}; {','.join(t.roles)}; "
                f"{'yes' if t.owner_required else 'no'}"
                for t in spec.tiers
            ),
        }

    def clean_currency(self) -> str:
        value: str = self.cleaned_data["currency"].strip().upper()
        if not value.isalpha():
            raise forms.ValidationError("Write a currency code such as USD.")
        return value

    def clean_velocity_caps(self) -> dict[str, Decimal]:
        caps: dict[str, Decimal] = {}
        for item in filter(
            None, (p.strip() for p in self.cleaned_data["velocity_caps"].split(","))
        ):
            asset, sep, amount = item.partition("=")
            try:
                if not sep or not asset.strip().isalnum():
                    raise InvalidOperation
                caps[asset.strip().upper()] = _decimal(amount)
            except (InvalidOperation, ValueError):
                raise forms.ValidationError(BAD_CAP) from None
        return caps

    def clean_tiers(self) -> tuple[TierSpec, ...]:
        tiers = []
        lines = [line for line in self.cleaned_data["tiers"].splitlines() if line.strip()]
        for n, line in enumerate(lines, start=1):
            fields = [f.strip() for f in line.split(";")]
            if len(fields) != 4 or fields[3].lower() not in ("yes", "no"):
                raise forms.ValidationError(BAD_TIER.format(n=n))
            try:
                threshold = _decimal(fields[0])
                approvals = int(fields[1])
                if not 1 <= approvals <= 10:
                    raise ValueError
            except (InvalidOperation, ValueError):
                raise forms.ValidationError(BAD_TIER.format(n=n)) from None
            roles = tuple(r.strip().lower() for r in fields[2].split(",") if r.strip())
            for role in roles:
                if role not in Role.values:
                    raise forms.ValidationError(
                        BAD_ROLE.format(n=n, role=role, roles=", ".join(Role.values))
                    )
            if not roles:
                raise forms.ValidationError(BAD_TIER.format(n=n))
            tiers.append(TierSpec(threshold, approvals, roles, fields[3].lower() == "yes"))
        if len({t.min_value for t in tiers}) != len(tiers):
            raise forms.ValidationError("Two tiers have the same threshold.")
        return tuple(sorted(tiers, key=lambda t: t.min_value))

    def spec(self) -> PolicySpec:
        data = self.cleaned_data
        return PolicySpec(
            currency=data["currency"],
            expiry_hours=data["expiry_hours"],
            velocity_caps=data["velocity_caps"],
            tiers=data["tiers"],
        )
