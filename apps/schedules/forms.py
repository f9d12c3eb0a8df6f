"""The workflow form. It only shapes the input; every rule (the schedule, the caps, the action's
parameters, the account) is the service's (services._check), whose messages land next to the
fields here."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any, cast

from django import forms

from apps.orgs.models import KrakenAccount, Organization
from apps.schedules.models import Workflow
from apps.schedules.registry import actions


@cache
def zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones() - {"localtime"})


class WorkflowForm(forms.Form):
    name = forms.CharField(max_length=120)
    account = forms.TypedChoiceField(coerce=int, label="Kraken account")
    schedule_kind = forms.ChoiceField(
        choices=Workflow.ScheduleKind.choices, label="Schedule", initial="cron"
    )
    cron = forms.CharField(
        max_length=120,
        required=False,
        label="Cron expression",
        help_text="minute hour day-of-month month day-of-week, e.g. 0 9 * * 1-5",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    timezone = forms.CharField(
        max_length=64,
        required=False,
        initial="UTC",
        label="Time zone",
        widget=forms.TextInput(attrs={"list": "zone-names", "autocomplete": "off"}),
    )
    interval_minutes = forms.IntegerField(
        required=False, min_value=1, label="Every (minutes)", help_text="Anchored in UTC."
    )
    action = forms.ChoiceField(label="Action")
    per_run_cap = forms.CharField(max_length=40, label="Per-run cap")
    per_day_cap = forms.CharField(max_length=40, label="Per-day cap")
    approval_mode = forms.ChoiceField(
        choices=Workflow.ApprovalMode.choices, label="Approval", initial="once"
    )
    catch_up = forms.ChoiceField(
        choices=Workflow.CatchUp.choices, label="Missed slots", initial="skip"
    )

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        accounts = KrakenAccount.objects.filter(org=org, archived_at__isnull=True)
        account_field = cast(forms.ChoiceField, self.fields["account"])
        account_field.choices = [(a.pk, str(a)) for a in accounts]
        action_field = cast(forms.ChoiceField, self.fields["action"])
        action_field.choices = [("", "Choose an action")] + [(a.key, a.label) for a in actions()]
        for name in ("cron", "timezone", "interval_minutes", "schedule_kind"):
            self.fields[name].widget.attrs.update({"data-preview": "1"})


def workflow_initial(workflow: Workflow) -> dict[str, Any]:
    return {
        "name": workflow.name,
        "account": workflow.account_id,
        "schedule_kind": workflow.schedule_kind,
        "cron": workflow.cron,
        "timezone": workflow.timezone,
        "interval_minutes": workflow.interval_minutes,
        "action": workflow.action,
        "per_run_cap": workflow.per_run_cap_text,
        "per_day_cap": workflow.per_day_cap_text,
        "approval_mode": workflow.approval_mode,
        "catch_up": workflow.catch_up,
    }
