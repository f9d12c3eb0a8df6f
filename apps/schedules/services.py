"""Writes for workflows: create, edit, pause, resume. The run side (the beat's claim, the
execution) is in `ticks.py` and `runs.py`; the approval kind in `approval_kind.py`.

Who may do what (ROLE rules, with their messages): creating or editing needs the action's
capability (REQUEST_FUNDING for funding's actions: treasurers and owners); pausing and resuming
needs that, or MANAGE_POLICIES (owners and admins), because stopping a workflow is a safety act;
everyone else may look.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.core.trail import audit_record
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.schedules import live
from apps.schedules.models import DECIMAL_PLACES, Workflow
from apps.schedules.registry import WorkflowAction, action_find
from apps.schedules.slots import ScheduleError, Slot, cron_check, slots_after, zone_get

CANNOT_CREATE = "Your role cannot set up workflows that move funds."
CANNOT_MANAGE = "Your role cannot pause or resume workflows."
ACTION_UNKNOWN = "Choose an action from the list."
ACCOUNT_UNKNOWN = "Choose one of the organization's active Kraken accounts."
NAME_REQUIRED = "Give the workflow a name."
CAP_POSITIVE = "A cap must be a positive amount."
CAP_DECIMALS = "At most {places} decimal places."
CAP_ORDER = "The per-run cap cannot be above the per-day cap."
ALREADY_PAUSED = "This workflow is already paused."
ALREADY_ACTIVE = "This workflow is already active."
ARCHIVED = "This workflow is archived: it cannot run, be changed or be resumed any more."
ARCHIVED_RUN = "The workflow was archived by {email}: this run was not run."
SCHEDULE_KIND_UNKNOWN = "Choose a cron expression or an interval."


@dataclass
class WorkflowInput:
    """What the form (or a caller) asks for; checked by `_check`, which owns every rule."""

    name: str
    account_id: int | None
    schedule_kind: str
    cron: str
    timezone: str
    interval_minutes: int | None
    action: str
    params: dict[str, Any]
    per_run_cap: Decimal | str | None
    per_day_cap: Decimal | str | None
    approval_mode: str
    catch_up: str
    anchor: datetime | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)


def can_create(membership: Membership, action: WorkflowAction | None = None) -> bool:
    capability = action.capability if action is not None else Capability.REQUEST_FUNDING
    return membership.can(capability)


def can_manage(membership: Membership) -> bool:
    return membership.can(Capability.REQUEST_FUNDING) or membership.can(Capability.MANAGE_POLICIES)


def _cap(value: Decimal | str | None, field_name: str, errors: dict[str, list[str]]) -> Decimal:
    try:
        amount = Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        amount = Decimal(0)
    if not amount.is_finite() or amount <= 0:
        errors.setdefault(field_name, []).append(CAP_POSITIVE)
        return Decimal(0)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > DECIMAL_PLACES:
        errors.setdefault(field_name, []).append(CAP_DECIMALS.format(places=DECIMAL_PLACES))
    return amount


def schedule_check(data: WorkflowInput) -> dict[str, list[str]]:
    """The schedule's own errors, by field (also the live preview's)."""
    errors: dict[str, list[str]] = {}
    try:
        if data.schedule_kind == Workflow.ScheduleKind.CRON:
            data.cron = cron_check(data.cron)
            zone_get(data.timezone)
        elif data.schedule_kind == Workflow.ScheduleKind.INTERVAL:
            data.timezone = "UTC"
            if data.interval_minutes is None or data.interval_minutes < 1:
                raise ScheduleError(
                    "interval_minutes",
                    "The interval must be a whole number of minutes, from 1 to 44,640 (31 days).",
                )
            next(
                slots_after(
                    kind="interval", after=timezone.now(), interval_minutes=data.interval_minutes
                )
            )
        else:
            errors["schedule_kind"] = [SCHEDULE_KIND_UNKNOWN]
    except ScheduleError as error:
        errors.setdefault(error.field, []).append(error.message)
    return errors


def _check(
    *, membership: Membership, data: WorkflowInput
) -> tuple[WorkflowAction, KrakenAccount, dict[str, Any], Decimal, Decimal]:
    errors = schedule_check(data)
    data.name = data.name.strip()
    if not data.name:
        errors.setdefault("name", []).append(NAME_REQUIRED)
    account = (
        KrakenAccount.objects.filter(
            pk=data.account_id, org_id=membership.org_id, archived_at__isnull=True
        ).first()
        if data.account_id
        else None
    )
    if account is None:
        errors.setdefault("account", []).append(ACCOUNT_UNKNOWN)
    action = action_find(data.action)
    params: dict[str, Any] = {}
    if action is None:
        errors.setdefault("action", []).append(ACTION_UNKNOWN)
    else:
        if not can_create(membership, action):
            raise PermissionDenied(CANNOT_CREATE)
        # The action's form is its one rule set: it validates the stored JSON too.
        form = action.form(data=data.params, org=membership.org, account=account)
        if form.is_valid():
            params = form.params()
        else:
            for name, messages in form.errors.items():
                errors.setdefault(f"p-{name}", []).extend(str(m) for m in messages)
    per_run = _cap(data.per_run_cap, "per_run_cap", errors)
    per_day = _cap(data.per_day_cap, "per_day_cap", errors)
    if per_run > 0 and per_day > 0 and per_run > per_day:
        errors.setdefault("per_run_cap", []).append(CAP_ORDER)
    if data.approval_mode not in Workflow.ApprovalMode.values:
        errors.setdefault("approval_mode", []).append("Choose how runs are approved.")
    if data.catch_up not in Workflow.CatchUp.values:
        errors.setdefault("catch_up", []).append("Choose what happens to missed slots.")
    if errors:
        raise ValidationError(errors)
    if action is None or account is None:  # both were reported above
        raise ValidationError(ACTION_UNKNOWN)
    return action, account, params, per_run, per_day


def workflow_terms(workflow: Workflow) -> dict[str, Any]:
    """What an approval given once approves: account, action, its terms (destination, asset,
    amounts), the caps and the mode. The schedule and the name are not terms."""
    action = action_find(workflow.action)
    params = workflow.params
    if action is not None and action.terms is not None:
        params = action.terms(params)
    return {
        "account": workflow.account_id,
        "action": workflow.action,
        "params": params,
        "cap_asset": workflow.cap_asset,
        "per_run_cap": format(Decimal(workflow.per_run_cap).normalize(), "f"),
        "per_day_cap": format(Decimal(workflow.per_day_cap).normalize(), "f"),
        "mode": workflow.approval_mode,
    }


def workflow_terms_hash(workflow: Workflow) -> str:
    text = json.dumps(workflow_terms(workflow), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def workflow_is_approved(workflow: Workflow) -> bool:
    return bool(workflow.approved_terms) and workflow.approved_terms == workflow_terms_hash(
        workflow
    )


def workflow_next_slot(workflow: Workflow, *, after: datetime) -> Slot:
    return next(
        slots_after(
            kind=workflow.schedule_kind,
            after=after,
            cron=workflow.cron,
            zone=workflow.timezone,
            interval_minutes=workflow.interval_minutes,
            anchor=workflow.anchor,
        )
    )


def _set_cursor(workflow: Workflow, *, after: datetime) -> None:
    slot = workflow_next_slot(workflow, after=after)
    workflow.next_slot = slot.key
    workflow.next_slot_at = slot.at


def _apply(workflow: Workflow, data: WorkflowInput, checked: tuple[Any, ...]) -> None:
    action, account, params, per_run, per_day = checked
    workflow.name = data.name
    workflow.account = account
    workflow.schedule_kind = data.schedule_kind
    workflow.cron = data.cron if data.schedule_kind == Workflow.ScheduleKind.CRON else ""
    workflow.timezone = data.timezone
    workflow.interval_minutes = (
        data.interval_minutes if data.schedule_kind == Workflow.ScheduleKind.INTERVAL else None
    )
    workflow.action = action.key
    workflow.params = params
    workflow.cap_asset = action.cap_asset(params)
    workflow.per_run_cap = per_run
    workflow.per_day_cap = per_day
    workflow.approval_mode = data.approval_mode
    workflow.catch_up = data.catch_up


def _ask_approval(workflow: Workflow, membership: Membership, request: HttpRequest | None) -> None:
    """An approval-once workflow whose terms are not approved asks for it (unless a request is
    already waiting: its fingerprint is the current terms, so it now asks about these)."""
    from apps.schedules.approval_kind import workflow_approval_request

    if workflow.approval_mode != Workflow.ApprovalMode.ONCE or workflow_is_approved(workflow):
        return
    workflow_approval_request(workflow=workflow, requester=membership, request=request)


@transaction.atomic(durable=True)
def workflow_create(
    *, membership: Membership, data: WorkflowInput, request: HttpRequest | None = None
) -> Workflow:
    if not can_create(membership, action_find(data.action)):
        raise PermissionDenied(CANNOT_CREATE)
    checked = _check(membership=membership, data=data)
    workflow = Workflow(
        org=membership.org, created_by=membership.user, terms_set_by=membership.user
    )
    _apply(workflow, data, checked)
    now = timezone.now()
    if workflow.schedule_kind == Workflow.ScheduleKind.INTERVAL:
        workflow.anchor = data.anchor or now.replace(second=0, microsecond=0)
    _set_cursor(workflow, after=now)
    workflow.full_clean()
    workflow.save()
    audit_record(
        action="schedules.workflow_create",
        actor=membership,
        target=workflow,
        detail=_audit_detail(workflow),
        request=request,
    )
    _ask_approval(workflow, membership, request)
    live.workflow_changed_on_commit(workflow)
    return workflow


@transaction.atomic(durable=True)
def workflow_update(
    *,
    membership: Membership,
    workflow: Workflow,
    data: WorkflowInput,
    request: HttpRequest | None = None,
) -> Workflow:
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk, org=membership.org)
    if not can_create(membership, action_find(data.action)):
        raise PermissionDenied(CANNOT_CREATE)
    if workflow.is_archived:
        raise ValidationError(ARCHIVED)
    checked = _check(membership=membership, data=data)
    before = _audit_detail(workflow)
    approved_before = workflow_is_approved(workflow)
    terms_before = workflow_terms_hash(workflow)
    schedule_before = (
        workflow.schedule_kind,
        workflow.cron,
        workflow.timezone,
        workflow.interval_minutes,
    )
    _apply(workflow, data, checked)
    if schedule_before != (
        workflow.schedule_kind,
        workflow.cron,
        workflow.timezone,
        workflow.interval_minutes,
    ):
        if workflow.schedule_kind == Workflow.ScheduleKind.INTERVAL and workflow.anchor is None:
            workflow.anchor = timezone.now().replace(second=0, microsecond=0)
        _set_cursor(workflow, after=timezone.now())
    voided = approved_before and not workflow_is_approved(workflow)
    if voided:
        workflow.approved_terms = ""
    if workflow_terms_hash(workflow) != terms_before:
        workflow.terms_set_by = membership.user
    workflow.full_clean()
    workflow.save()
    audit_record(
        action="schedules.workflow_update",
        actor=membership,
        target=workflow,
        detail={"before": before, "after": _audit_detail(workflow), "approval_voided": voided},
        request=request,
    )
    _ask_approval(workflow, membership, request)
    live.workflow_changed_on_commit(workflow)
    return workflow


@transaction.atomic(durable=True)
def workflow_pause(
    *,
    membership: Membership | None,
    workflow: Workflow,
    reason: str = "",
    request: HttpRequest | None = None,
) -> Workflow:
    """Pause. `membership` None is the system (a destination removed from the address book:
    funding calls this through `workflows_pause_using`)."""
    if membership is not None and not can_manage(membership):
        raise PermissionDenied(CANNOT_MANAGE)
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if workflow.is_archived:
        raise ValidationError(ARCHIVED)
    if workflow.status == Workflow.Status.PAUSED:
        raise ValidationError(ALREADY_PAUSED)
    workflow.status = Workflow.Status.PAUSED
    workflow.paused_reason = (
        reason or (f"Paused by {membership.user.email}" if membership else "Paused")
    )[:300]
    workflow.save(update_fields=["status", "paused_reason", "updated_at"])
    audit_record(
        action="schedules.workflow_pause",
        actor=membership,
        org=workflow.org,
        target=workflow,
        detail={"reason": workflow.paused_reason},
        request=request,
    )
    live.workflow_changed_on_commit(workflow)
    return workflow


@transaction.atomic(durable=True)
def workflow_resume(
    *, membership: Membership, workflow: Workflow, request: HttpRequest | None = None
) -> Workflow:
    """Resume from now: the slots that passed while paused are not runs (pausing means "do
    not run"), so the cursor moves to the next slot after now."""
    if not can_manage(membership):
        raise PermissionDenied(CANNOT_MANAGE)
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if workflow.is_archived:
        raise ValidationError(ARCHIVED)
    if workflow.status == Workflow.Status.ACTIVE:
        raise ValidationError(ALREADY_ACTIVE)
    workflow.status = Workflow.Status.ACTIVE
    workflow.paused_reason = ""
    _set_cursor(workflow, after=timezone.now())
    workflow.save(
        update_fields=["status", "paused_reason", "next_slot", "next_slot_at", "updated_at"]
    )
    audit_record(
        action="schedules.workflow_resume",
        actor=membership,
        target=workflow,
        detail={"next_slot": workflow.next_slot},
        request=request,
    )
    live.workflow_changed_on_commit(workflow)
    return workflow


@transaction.atomic(durable=True)
def workflow_archive(
    *, membership: Membership, workflow: Workflow, request: HttpRequest | None = None
) -> Workflow:
    """Retire a workflow for good. Nothing is deleted: its runs, their decisions and audit
    records stay. It claims no slot any more, and its runs still waiting for approval are
    settled as not run (an approval given later finds nothing to execute)."""
    if not can_manage(membership):
        raise PermissionDenied(CANNOT_MANAGE)
    workflow = (
        Workflow.objects.select_for_update(of=("self",))
        .select_related("org")
        .get(pk=workflow.pk, org=membership.org)
    )
    if workflow.is_archived:
        raise ValidationError(ARCHIVED)
    status_before = workflow.status
    workflow.status = Workflow.Status.ARCHIVED
    workflow.archived_at = timezone.now()
    workflow.paused_reason = ""
    workflow.save(update_fields=["status", "archived_at", "paused_reason", "updated_at"])
    from apps.schedules.runs import runs_settle_archived

    settled = runs_settle_archived(
        workflow=workflow, text=ARCHIVED_RUN.format(email=membership.user.email)
    )
    audit_record(
        action="schedules.workflow_archive",
        actor=membership,
        target=workflow,
        detail={"status_before": status_before, "runs_not_run": settled},
        request=request,
    )
    live.workflow_changed_on_commit(workflow)
    return workflow


def workflows_pause_using(*, org_id: int, match: dict[str, Any], reason: str) -> int:
    """For the business apps (in their own transaction): pause every active workflow of the
    organization whose parameters contain `match` (a destination removed from the address
    book). Returns how many were paused."""
    paused = 0
    candidates = Workflow.objects.select_for_update().filter(
        org_id=org_id, status=Workflow.Status.ACTIVE
    )
    # Matched in Python: JSON containment is PostgreSQL-only and an organization has few.
    for workflow in candidates:
        if any(workflow.params.get(key) != value for key, value in match.items()):
            continue
        workflow.status = Workflow.Status.PAUSED
        workflow.paused_reason = reason[:300]
        workflow.save(update_fields=["status", "paused_reason", "updated_at"])
        audit_record(
            action="schedules.workflow_pause",
            org=workflow.org,
            target=workflow,
            detail={"reason": workflow.paused_reason},
        )
        live.workflow_changed_on_commit(workflow)
        paused += 1
    return paused


def _audit_detail(workflow: Workflow) -> dict[str, Any]:
    return {
        "name": workflow.name,
        "account": workflow.account_id,
        "schedule": workflow.schedule_text,
        "action": workflow.action,
        "params": workflow.params,
        "caps": {
            "asset": workflow.cap_asset,
            "per_run": workflow.per_run_cap_text,
            "per_day": workflow.per_day_cap_text,
        },
        "approval_mode": workflow.approval_mode,
        "catch_up": workflow.catch_up,
    }
