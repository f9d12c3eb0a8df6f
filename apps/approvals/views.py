from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from apps.accounts.stepup import step_up_is_fresh, step_up_redirect
from apps.approvals.forms import DecisionForm, PolicyForm
from apps.approvals.models import ApprovalRequest
from apps.approvals.policies import policy_for
from apps.approvals.policy_changes import policy_change_propose, policy_spec
from apps.approvals.registry import approval_kind_get, approval_kinds
from apps.approvals.selectors import (
    approval_decisions,
    approval_get_in_org,
    approval_timeline,
    approvals_recent,
    approvals_waiting,
)
from apps.approvals.services import approval_cancel, approval_decide
from apps.orgs.access import org_view
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability, Role

DECIDED = "Your decision was recorded."
CANCELLED = "The request was cancelled."
ONLY_OWNERS_EDIT = "Only an owner can change an approval policy."


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _error_text(error: ValidationError | PermissionDenied) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


@dataclass(frozen=True)
class Described:
    approval: ApprovalRequest
    label: str
    description: str


def _described(approval: ApprovalRequest) -> Described:
    registered = approval_kind_get(approval.kind)
    return Described(approval, registered.label, registered.describe(approval))


@require_GET
@org_view(Capability.VIEW)
def inbox(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    waiting = list(approvals_waiting(membership=membership).select_related("requester"))
    context = {
        "org": membership.org,
        "waiting": [_described(approval) for approval in waiting],
        "recent": [_described(approval) for approval in approvals_recent(membership=membership)],
    }
    template = "approvals/inbox.html" + ("#approval-inbox" if request.htmx else "")
    return render(request, template, context)


def _detail_context(membership: Membership, approval: ApprovalRequest) -> dict[str, Any]:
    registered = approval_kind_get(approval.kind)
    return {
        "org": membership.org,
        "approval": approval,
        "label": registered.label,
        "description": registered.describe(approval),
        "events": approval_timeline(approval=approval),
        "decisions": approval_decisions(approval=approval),
        "form": DecisionForm(initial={"fingerprint": approval.fingerprint}),
        "can_decide": approval.status == ApprovalRequest.Status.PENDING
        and membership.role in approval.approver_roles
        and approval.requester_id != membership.user_id,
        "can_cancel": approval.status
        in (ApprovalRequest.Status.PENDING, ApprovalRequest.Status.APPROVED)
        and (approval.requester_id == membership.user_id or membership.role == Role.OWNER),
    }


@require_GET
@org_view(Capability.VIEW)
def request_detail(request: HtmxHttpRequest, membership: Membership, pk: int) -> HttpResponse:
    approval = approval_get_in_org(membership=membership, pk=pk)
    template = "approvals/request_detail.html" + ("#approval-timeline" if request.htmx else "")
    return render(request, template, _detail_context(membership, approval))


@require_POST
@org_view(Capability.VIEW)
def request_decide(request: HtmxHttpRequest, membership: Membership, pk: int) -> HttpResponseBase:
    approval = approval_get_in_org(membership=membership, pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        context = _detail_context(membership, approval)
        context["form"], context["error"] = form, "Choose approve or reject."
        return render(request, "approvals/request_detail.html", context, status=400)
    if not step_up_is_fresh(request):
        # Every decision is confirmed with a fresh second factor; the page is shown again after.
        return step_up_redirect(request)
    try:
        approval_decide(
            approval=approval,
            actor=membership,
            verdict=form.cleaned_data["verdict"],
            fingerprint_seen=form.cleaned_data["fingerprint"],
            stepped_up=True,
            request=request,
        )
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, DECIDED)
    return redirect("approvals:request-detail", org=membership.org.slug, pk=approval.pk)


@require_POST
@org_view(Capability.VIEW)
def request_cancel(request: HtmxHttpRequest, membership: Membership, pk: int) -> HttpResponseBase:
    approval = approval_get_in_org(membership=membership, pk=pk)
    try:
        approval_cancel(approval=approval, actor=membership, request=request)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, CANCELLED)
    return redirect("approvals:request-detail", org=membership.org.slug, pk=approval.pk)


@require_GET
@org_view(Capability.MANAGE_POLICIES)
def policy_list(request: HtmxHttpRequest, membership: Membership) -> HttpResponse:
    rows = [
        (kind, policy_spec(policy_for(org=membership.org, kind=kind.key)))
        for kind in approval_kinds()
    ]
    return render(
        request,
        "approvals/policy_list.html",
        {"org": membership.org, "rows": rows, "is_owner": membership.role == Role.OWNER},
    )


@require_http_methods(["GET", "POST"])
@org_view(Capability.MANAGE_POLICIES)
def policy_edit(request: HtmxHttpRequest, membership: Membership, kind: str) -> HttpResponseBase:
    try:
        registered = approval_kind_get(kind)
    except LookupError:
        raise Http404("No such policy.") from None
    if not registered.editable:
        raise Http404("This policy is fixed.")
    if membership.role != Role.OWNER:
        raise PermissionDenied(ONLY_OWNERS_EDIT)
    spec = policy_spec(policy_for(org=membership.org, kind=kind))
    form = PolicyForm(request.POST or None, initial=PolicyForm.initial_from(spec))
    if request.method == "POST" and form.is_valid():
        try:
            outcome = policy_change_propose(
                org=membership.org,
                kind=kind,
                actor=membership,
                spec=form.spec(),
                stepped_up=step_up_is_fresh(request),
                request=request,
            )
        except PermissionDenied:
            # A sole owner's loosening: confirm the second factor, then submit again.
            return step_up_redirect(request)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, outcome.message)
            if outcome.approval is not None:
                return redirect(
                    "approvals:request-detail", org=membership.org.slug, pk=outcome.approval.pk
                )
            return redirect("approvals:policy-list", org=membership.org.slug)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "approvals/policy_edit.html",
        {"org": membership.org, "form": form, "kind": registered},
        status=status,
    )
