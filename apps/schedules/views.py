"""Workflow pages: the list, the form (with its live preview of the next five runs and the
chosen action's own fields), a workflow with its runs, pause and resume, and a run's page whose
progress arrives live. Thin: rules live in services, reads in selectors."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from apps.accounts.stepup import (
    FORM_KEPT,
    kept_form_mark,
    kept_form_take,
    step_up_is_fresh,
    step_up_redirect,
)
from apps.orgs.access import org_view
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.schedules import selectors, services
from apps.schedules.forms import WorkflowForm, workflow_initial, zone_names
from apps.schedules.models import Workflow
from apps.schedules.registry import ActionParamsForm, action_find, actions
from apps.schedules.slots import ScheduleError, next_slots

PREVIEW_COUNT = 5
PARAMS_PREFIX = "p"
WORKFLOW_STEP_UP = "Setting up a workflow that moves funds"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _params_form(
    membership: Membership, action_key: str, data: Any = None, initial: Any = None
) -> ActionParamsForm | None:
    action = action_find(action_key or "")
    if action is None:
        return None
    account_id = (data or {}).get("account") if data is not None else None
    account = (
        KrakenAccount.objects.filter(org=membership.org, pk=account_id).first()
        if account_id and str(account_id).isdigit()
        else None
    )
    return action.form(
        data=data, initial=initial, org=membership.org, account=account, prefix=PARAMS_PREFIX
    )


def _preview(data: Any) -> dict[str, Any]:
    """The next five runs for the schedule typed so far, or the error to show."""
    kind = data.get("schedule_kind") or Workflow.ScheduleKind.CRON
    interval: int | None = None
    if kind == Workflow.ScheduleKind.INTERVAL:
        raw = str(data.get("interval_minutes") or "")
        interval = int(raw) if raw.isdigit() else None
    try:
        slots = next_slots(
            kind=kind,
            after=timezone.now(),
            count=PREVIEW_COUNT,
            cron=str(data.get("cron") or ""),
            zone=str(data.get("timezone") or "UTC") if kind == "cron" else "UTC",
            interval_minutes=interval,
            anchor=timezone.now().replace(second=0, microsecond=0),
        )
    except ScheduleError as error:
        return {"preview_error": error.message, "preview": []}
    return {"preview": slots, "preview_error": ""}


def _input(form: WorkflowForm, params_form: ActionParamsForm | None) -> services.WorkflowInput:
    data = form.cleaned_data
    params: dict[str, Any] = {}
    if params_form is not None:
        params = {
            name: params_form.data.get(f"{PARAMS_PREFIX}-{name}", "") for name in params_form.fields
        }
    return services.WorkflowInput(
        name=data["name"],
        account_id=data["account"],
        schedule_kind=data["schedule_kind"],
        cron=data.get("cron") or "",
        timezone=data.get("timezone") or "UTC",
        interval_minutes=data.get("interval_minutes"),
        action=data["action"],
        params=params,
        per_run_cap=data["per_run_cap"],
        per_day_cap=data["per_day_cap"],
        approval_mode=data["approval_mode"],
        catch_up=data["catch_up"],
    )


def _show_errors(
    form: WorkflowForm, params_form: ActionParamsForm | None, error: ValidationError
) -> None:
    if params_form is not None:
        params_form.is_valid()  # its own rules give its own field errors
    for key, texts in error.message_dict.items():
        if key.startswith(f"{PARAMS_PREFIX}-"):
            continue
        for text in texts:
            form.add_error(key if key in form.fields else None, text)


def _kept_form_class() -> type[forms.Form]:
    """The workflow form's fields and every action's (prefixed), so a step-up keeps them all."""
    fields: dict[str, Any] = dict(WorkflowForm.base_fields)
    for action in actions():
        for name, field in action.form.base_fields.items():
            fields[f"{PARAMS_PREFIX}-{name}"] = field
    return type("KeptWorkflowForm", (forms.Form,), fields)


def _form_page(
    request: HtmxHttpRequest,
    membership: Membership,
    workflow: Workflow | None,
) -> HttpResponseBase:
    org = membership.org
    kept = kept_form_take(request)
    if request.method == "POST" and not step_up_is_fresh(request):
        # A workflow moves funds unattended later: setting one up is confirmed with a fresh
        # second factor, and what was typed comes back after it.
        return step_up_redirect(request, purpose=WORKFLOW_STEP_UP, keep_form=_kept_form_class())
    if kept is not None:
        typed = kept.query()
        form = WorkflowForm(typed, org=org)
        kept_form_mark(form, kept)
        params_form = _params_form(membership, typed.get("action", ""), data=typed)
        if params_form is not None:
            params_form.is_valid()
        messages.info(request, FORM_KEPT)
        preview_source: Any = typed
        status = 200
    elif request.method == "POST":
        form = WorkflowForm(request.POST, org=org)
        params_form = _params_form(membership, request.POST.get("action", ""), data=request.POST)
        if form.is_valid():
            data = _input(form, params_form)
            try:
                if workflow is None:
                    saved = services.workflow_create(
                        membership=membership, data=data, request=request
                    )
                    messages.success(request, f"Workflow “{saved.name}” created.")
                else:
                    saved = services.workflow_update(
                        membership=membership, workflow=workflow, data=data, request=request
                    )
                    messages.success(request, f"Workflow “{saved.name}” saved.")
            except ValidationError as error:
                _show_errors(form, params_form, error)
            else:
                return redirect("schedules:workflow-detail", org=org.slug, pk=saved.pk)
        elif params_form is not None:
            params_form.is_valid()
        preview_source = request.POST
        status = 400
    else:
        initial = (
            workflow_initial(workflow)
            if workflow is not None
            else {"timezone": org.business_timezone}
        )
        form = WorkflowForm(initial=initial, org=org)
        params_form = (
            _params_form(
                membership,
                workflow.action,
                initial=workflow.params,
            )
            if workflow is not None
            else None
        )
        preview_source = initial
        status = 200
    context = {
        "org": org,
        "form": form,
        "params_form": params_form,
        "workflow": workflow,
        "zone_names": zone_names(),
        **_preview(preview_source),
    }
    return render(request, "schedules/workflow_form.html", context, status=status)


@require_GET
@org_view(Capability.VIEW)
def workflow_list_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    workflows = list(selectors.workflows_of(org=membership.org))
    template = "schedules/workflow_list.html" + ("#workflow-table" if request.htmx else "")
    return render(
        request,
        template,
        {
            "org": membership.org,
            "workflows": workflows,
            "can_create": services.can_create(membership),
        },
    )


@require_http_methods(["GET", "POST"])
@org_view(Capability.REQUEST_FUNDING)
def workflow_create_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponseBase:
    return _form_page(request, membership, None)


@require_http_methods(["GET", "POST"])
@org_view(Capability.REQUEST_FUNDING)
def workflow_edit_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    workflow = selectors.workflow_get(org=membership.org, pk=pk)
    if workflow.is_archived:
        messages.error(request, services.ARCHIVED)
        return redirect("schedules:workflow-detail", org=membership.org.slug, pk=workflow.pk)
    return _form_page(request, membership, workflow)


@require_GET
@org_view(Capability.REQUEST_FUNDING)
def schedule_preview_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    """The form's live preview (htmx, as the user types): the next five runs, or the error."""
    return render(
        request,
        "schedules/workflow_form.html#schedule-preview",
        {"org": membership.org, **_preview(request.GET)},
    )


@require_GET
@org_view(Capability.REQUEST_FUNDING)
def action_params_view(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    """The chosen action's own fields (htmx, when the action changes)."""
    params_form = _params_form(membership, request.GET.get("action", ""))
    return render(
        request,
        "schedules/workflow_form.html#action-params",
        {"org": membership.org, "params_form": params_form},
    )


@require_GET
@org_view(Capability.VIEW)
def workflow_detail_view(request: HtmxHttpRequest, membership: Membership, pk: int) -> HttpResponse:
    workflow = selectors.workflow_get(org=membership.org, pk=pk)
    action = action_find(workflow.action)
    upcoming: list[Any] = []
    if workflow.is_active:
        try:
            upcoming = next_slots(
                kind=workflow.schedule_kind,
                after=timezone.now(),
                count=PREVIEW_COUNT,
                cron=workflow.cron,
                zone=workflow.timezone,
                interval_minutes=workflow.interval_minutes,
                anchor=workflow.anchor,
            )
        except ScheduleError:
            upcoming = []
    template = "schedules/workflow_detail.html" + ("#run-table" if request.htmx else "")
    return render(
        request,
        template,
        {
            "org": membership.org,
            "workflow": workflow,
            "runs": selectors.workflow_runs(workflow=workflow),
            "action_label": action.label if action is not None else workflow.action,
            "action_text": action.describe(workflow.params) if action is not None else "",
            "approved": services.workflow_is_approved(workflow),
            "upcoming": upcoming,
            "can_edit": services.can_create(membership, action),
            "can_manage": services.can_manage(membership),
        },
    )


def _toggle(
    request: HtmxHttpRequest, membership: Membership, pk: int, *, pause: bool
) -> HttpResponseBase:
    workflow = selectors.workflow_get(org=membership.org, pk=pk)
    if not services.can_manage(membership):
        raise PermissionDenied(services.CANNOT_MANAGE)
    try:
        if pause:
            services.workflow_pause(membership=membership, workflow=workflow, request=request)
            messages.success(request, f"“{workflow.name}” paused.")
        else:
            services.workflow_resume(membership=membership, workflow=workflow, request=request)
            messages.success(request, f"“{workflow.name}” resumed.")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("schedules:workflow-detail", org=membership.org.slug, pk=workflow.pk)


@require_POST
@org_view(Capability.VIEW)
def workflow_pause_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    return _toggle(request, membership, pk, pause=True)


@require_POST
@org_view(Capability.VIEW)
def workflow_resume_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    return _toggle(request, membership, pk, pause=False)


@require_POST
@org_view(Capability.VIEW)
def workflow_archive_view(
    request: HtmxHttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    workflow = selectors.workflow_get(org=membership.org, pk=pk)
    if not services.can_manage(membership):
        raise PermissionDenied(services.CANNOT_MANAGE)
    try:
        services.workflow_archive(membership=membership, workflow=workflow, request=request)
        messages.success(request, f"“{workflow.name}” archived. Its runs stay below.")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("schedules:workflow-detail", org=membership.org.slug, pk=workflow.pk)


@require_GET
@org_view(Capability.VIEW)
def run_detail_view(request: HtmxHttpRequest, membership: Membership, pk: int) -> HttpResponse:
    run = selectors.run_get(org=membership.org, pk=pk)
    template = "schedules/run_detail.html" + ("#run-card" if request.htmx else "")
    return render(
        request,
        template,
        {
            "org": membership.org,
            "run": run,
            "workflow": run.workflow,
            "events": list(run.events.all()),
        },
    )
