"""The approval kind `funding.workflow`, for both ways a workflow is approved:

- `mode: "workflow"` (approved once, with its caps): the subject is the workflow; its
  fingerprint is the workflow's terms (services.workflow_terms_hash), so changing the account,
  action, destination, caps or mode after a decision voids it, and the handler records the
  terms the quorum approved. Runs then execute within the caps without asking again.
- `mode: "run"` (each run): the subject is the run; its fingerprint is the workflow's terms and
  the run's amount; the handler executes the run.

The request is asked in the name of the workflow's creator, so its creator can never approve
it (the four-eyes rule of apps.approvals)."""

from __future__ import annotations

import hashlib
from decimal import ROUND_CEILING, Decimal

from django.core.exceptions import ValidationError
from django.http import HttpRequest

from apps.approvals.models import ApprovalRequest
from apps.approvals.policies import policy_for
from apps.approvals.registry import TierSpec, approval_kind_register
from apps.approvals.services import approval_request_create, approval_void
from apps.core.trail import audit_record
from apps.market.conversion import value_in
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.schedules import live
from apps.schedules.models import Run, Workflow
from apps.schedules.registry import action_find
from apps.schedules.services import workflow_terms_hash

KIND = "funding.workflow"
WORKFLOW_GONE = "This workflow no longer exists."
RUN_GONE = "This run no longer exists."
DEFAULT_TIERS = (TierSpec(Decimal(0), 1, (Role.OWNER, Role.APPROVER)),)


def _workflow(approval: ApprovalRequest) -> Workflow | None:
    return (
        Workflow.objects.select_related("org", "account")
        .filter(pk=approval.summary.get("workflow_id"), org_id=approval.org_id)
        .first()
    )


def _run(approval: ApprovalRequest) -> Run | None:
    return Run.objects.filter(pk=approval.summary.get("run_id"), org_id=approval.org_id).first()


def _describe_workflow(workflow: Workflow) -> str:
    action = action_find(workflow.action)
    what = action.describe(workflow.params) if action is not None else workflow.action
    return (
        f"Workflow “{workflow.name}” on {workflow.account.label}: {what}; at most "
        f"{workflow.per_run_cap_text} {workflow.cap_asset} a run and "
        f"{workflow.per_day_cap_text} a day; {workflow.schedule_text}"
    )


def fingerprint(approval: ApprovalRequest) -> str:
    workflow = _workflow(approval)
    if workflow is None:
        return "gone"
    state = workflow_terms_hash(workflow)
    if approval.summary.get("mode") == "run":
        run = _run(approval)
        state += f":run:{run.pk}:{run.amount_text}" if run is not None else ":run:gone"
    return hashlib.sha256(state.encode()).hexdigest()


def describe(approval: ApprovalRequest) -> str:
    workflow = _workflow(approval)
    if workflow is None:
        return WORKFLOW_GONE
    if approval.summary.get("mode") == "run":
        run = _run(approval)
        if run is None:
            return RUN_GONE
        return f"Run {run.slot} of workflow “{workflow.name}”: {run.decision}"
    return f"Approve once: {_describe_workflow(workflow)}"


def handler(approval: ApprovalRequest) -> None:
    workflow = _workflow(approval)
    if workflow is None:
        raise ValidationError(WORKFLOW_GONE)
    if approval.summary.get("mode") == "run":
        run = _run(approval)
        if run is None:
            raise ValidationError(RUN_GONE)
        from apps.schedules.runs import run_approved

        run_approved(run=run)
        return
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    workflow.approved_terms = workflow_terms_hash(workflow)
    workflow.approval_request = approval
    workflow.save(update_fields=["approved_terms", "approval_request", "updated_at"])
    audit_record(
        action="schedules.workflow_approved",
        org=workflow.org,
        target=workflow,
        detail={"approval": approval.pk, "terms": workflow.approved_terms},
    )
    live.workflow_changed_on_commit(workflow)


def register() -> None:
    approval_kind_register(
        KIND,
        handler,
        describe,
        label="Funding workflow",
        fingerprint=fingerprint,
        default_tiers=DEFAULT_TIERS,
        default_expiry_hours=72,
    )


def _pending(org_id: int, **summary: object) -> ApprovalRequest | None:
    return (
        ApprovalRequest.objects.filter(
            org_id=org_id,
            kind=KIND,
            status__in=[ApprovalRequest.Status.PENDING, ApprovalRequest.Status.APPROVED],
            **{f"summary__{key}": value for key, value in summary.items()},
        )
        .order_by("-id")
        .first()
    )


def workflow_approval_request(
    *, workflow: Workflow, requester: Membership, request: HttpRequest | None = None
) -> ApprovalRequest:
    """Ask (in the caller's transaction) for the workflow's terms to be approved once; a
    request already waiting is reused (its fingerprint follows the terms as they are now)."""
    waiting = _pending(workflow.org_id, mode="workflow", workflow_id=workflow.pk)
    if waiting is not None and waiting.requester_id == requester.user_id:
        return waiting
    if waiting is not None:
        # Someone else set these terms: the request is asked anew in their name, so they can
        # never approve what they set themselves (a reused request kept the first requester).
        approval_void(
            approval=waiting,
            reason=f"The workflow's terms were changed by {requester.user.email}.",
            actor=requester,
        )
    approval = approval_request_create(
        org=workflow.org,
        kind=KIND,
        requester=requester,
        subject=workflow,
        summary={
            "mode": "workflow",
            "workflow_id": workflow.pk,
            "name": workflow.name,
            "action": workflow.action,
            "params": workflow.params,
            "cap_asset": workflow.cap_asset,
            "per_run_cap": str(workflow.per_run_cap),
            "per_day_cap": str(workflow.per_day_cap),
        },
        request=request,
    )
    workflow.approval_request = approval
    Workflow.objects.filter(pk=workflow.pk).update(approval_request=approval)
    return approval


def run_approval_request(*, run: Run, workflow: Workflow, requester: Membership) -> ApprovalRequest:
    """Ask (in the run's deciding transaction) for this run's amount to be approved, valued in
    the policy's currency (the organization's reporting currency) at live prices, the value and
    the rate frozen in the request so the policy's tiers by value apply. Raises
    apps.market.conversion.ConversionError when no fresh price values it (fail closed)."""
    currency = policy_for(org=workflow.org, kind=KIND).currency
    amount = run.amount if run.amount is not None else Decimal(0)
    valuation = value_in(asset=run.asset, quantity=amount, currency=currency)
    # At the request's precision (8 places), rounded up: a value never slips under a tier.
    places = ApprovalRequest._meta.get_field("value").decimal_places  # type: ignore[union-attr]
    value = valuation.value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_CEILING)
    return approval_request_create(
        org=workflow.org,
        kind=KIND,
        requester=requester,
        subject=run,
        summary={
            "mode": "run",
            "workflow_id": workflow.pk,
            "run_id": run.pk,
            "slot": run.slot,
            "amount": run.amount_text,
            "asset": run.asset,
            "value": format(value.normalize(), "f"),
            "currency": currency,
            "rate": format(valuation.rate, "f"),
            "route": valuation.route,
            "price_as_of": valuation.as_of.isoformat(),
        },
        value=value,
        currency=currency,
        asset=run.asset,
        amount=run.amount,
    )
