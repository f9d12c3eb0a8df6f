"""Writes for approval requests: create, decide, execute, cancel, expire.

The rules, each with its message below: a decision needs a fresh 2FA step-up; never the
requester; never the same person twice (also a database constraint); only the roles the tier
names; a change of the subject voids the decisions made before it (the fingerprint is checked at
decision and again at execution); at execution the value is read again and a higher tier needs
its extra approvals. Every step is audited, appended to the request's timeline, and published
live after commit to the requester and the approvers.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from apps.approvals.live import publish_counts, publish_request
from apps.approvals.models import ApprovalEvent, ApprovalRequest, Decision, Policy
from apps.approvals.policies import policy_for, policy_tiers, tier_for_value
from apps.approvals.registry import TierSpec, approval_kind_get
from apps.approvals.selectors import eligible_approver_ids
from apps.core.trail import audit_record
from apps.notifications.services import notify
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Role

logger = logging.getLogger(__name__)

STEP_UP_REQUIRED = "Confirm your two-factor code again before deciding on a request."
SELF_APPROVAL = "You cannot approve or reject a request you made yourself."
ALREADY_DECIDED = "You have already decided on this request; someone else must add theirs."
ROLE_NOT_ELIGIBLE = "Your role ({role}) cannot decide this request: it needs {roles}."
NOT_PENDING = "This request is no longer waiting for a decision (it is {status})."
REQUEST_EXPIRED = "This request expired before it was approved; ask for it again."
SUBJECT_CHANGED = (
    "What this request is about changed since you opened it, so the earlier approvals no longer "
    "count. Review it again and decide."
)
CURRENCY_MISMATCH = "The value is in {currency}, but this policy's thresholds are in {policy}."
VELOCITY_CAP = (
    "This would take {asset} requests in the last 24 hours to {total}, above the cap of {cap}."
)
CANNOT_CANCEL = "Only the requester or an owner can cancel a request."
OWNER_STILL_NEEDED = "An owner's approval is still needed."
HANDLER_FAILED = "The approved change could not be carried out."

UNSETTLED = (ApprovalRequest.Status.PENDING, ApprovalRequest.Status.APPROVED)


def _event(approval: ApprovalRequest, action: str, text: str, actor: Any = None) -> None:
    ApprovalEvent.objects.create(request=approval, action=action, text=text[:500], actor=actor)


def _audit(
    approval: ApprovalRequest,
    action: str,
    actor: Any = None,
    request: HttpRequest | None = None,
    **detail: Any,
) -> None:
    audit_record(
        action=f"approval.{action}",
        actor=actor,
        org=approval.org,
        target=approval,
        detail={"kind": approval.kind, "status": approval.status, **detail},
        request=request,
    )


def approval_link(approval: ApprovalRequest) -> str:
    return reverse("approvals:request-detail", kwargs={"org": approval.org.slug, "pk": approval.pk})


def _notify(approval: ApprovalRequest, kind: str, user_ids: Any, title: str) -> None:
    notify(
        org=approval.org,
        user_ids=user_ids,
        kind=kind,
        title=title,
        body=approval_kind_get(approval.kind).describe(approval),
        link=approval_link(approval),
    )


def _apply_tier(approval: ApprovalRequest, tier: TierSpec) -> None:
    approval.tier_min_value = tier.min_value
    approval.required_approvals = tier.approvals
    approval.approver_roles = list(tier.roles)
    approval.owner_required = tier.owner_required


def approval_request_create(
    *,
    org: Organization,
    kind: str,
    requester: Membership,
    summary: dict[str, Any],
    subject: models.Model | None = None,
    value: Decimal | None = None,
    currency: str = "",
    asset: str = "",
    amount: Decimal | None = None,
    request: HttpRequest | None = None,
) -> ApprovalRequest:
    """Ask for approval. Runs in the caller's transaction (the change waiting for approval and
    the request commit together). `value` is in `currency`, which must be the policy's."""
    registered = approval_kind_get(kind)
    if value is not None and "rate" not in summary:
        # What the approvers agree to must show how the value was reached.
        raise ValueError("A request with a value freezes the conversion rate used in its summary.")
    policy = policy_for(org=org, kind=kind)
    if value is not None and currency != policy.currency:
        raise ValidationError(CURRENCY_MISMATCH.format(currency=currency, policy=policy.currency))
    now = timezone.now()
    cap_text = policy.velocity_caps.get(asset) if asset else None
    if cap_text is not None and amount is not None:
        # Serialise the cap check per policy: two requests at once cannot both fit under it.
        Policy.objects.select_for_update().filter(pk=policy.pk).first()
        cap = Decimal(str(cap_text))
        # The rolling window: requests of the last 24 hours that are, or may still become, spent.
        earlier = ApprovalRequest.objects.filter(
            org=org,
            kind=kind,
            asset=asset,
            created_at__gt=now - timedelta(hours=24),
            status__in=[*UNSETTLED, ApprovalRequest.Status.EXECUTED],
        ).aggregate(total=models.Sum("amount"))["total"] or Decimal(0)
        if earlier + amount > cap:
            raise ValidationError(VELOCITY_CAP.format(asset=asset, total=earlier + amount, cap=cap))
    approval = ApprovalRequest(
        org=org,
        kind=kind,
        requester=requester.user,
        summary=summary,
        value=value,
        currency=currency or (policy.currency if value is not None else ""),
        asset=asset,
        amount=amount,
        expires_at=now + timedelta(hours=policy.expiry_hours),
    )
    if subject is not None:
        approval.subject_type = ContentType.objects.get_for_model(subject)
        approval.subject_id = str(subject.pk)
    _apply_tier(approval, tier_for_value(policy_tiers(policy), value))
    approval.fingerprint = registered.fingerprint(approval)
    approval.full_clean()
    approval.save()
    _event(approval, "requested", f"Requested: {registered.describe(approval)}", requester.user)
    _audit(approval, "request", actor=requester, request=request, summary=summary)
    _notify(
        approval,
        "approvals.needed",
        eligible_approver_ids(approval=approval),
        f"Approval needed: {registered.label}",
    )
    publish_request(approval)
    return approval


def _refresh(approval_id: int) -> None:
    """Before a decision, in its own transaction so it sticks whatever the decision does:
    expire an overdue request, and void earlier decisions if the subject changed."""
    with transaction.atomic(durable=True):
        approval = ApprovalRequest.objects.select_for_update().get(pk=approval_id)
        if approval.status not in UNSETTLED:
            return
        if approval.expires_at <= timezone.now() and approval.status == "pending":
            approval.status = ApprovalRequest.Status.EXPIRED
            approval.save(update_fields=["status"])
            _event(approval, "expired", "Expired without enough approvals.")
            _audit(approval, "expire")
            publish_request(approval)
            return
        _void_if_changed(approval)


def _void_if_changed(approval: ApprovalRequest) -> bool:
    current = approval_kind_get(approval.kind).fingerprint(approval)
    if current == approval.fingerprint:
        return False
    voided = Decision.objects.filter(request=approval, voided_at__isnull=True).update(
        voided_at=timezone.now()
    )
    approval.fingerprint = current
    approval.status = ApprovalRequest.Status.PENDING
    approval.save(update_fields=["fingerprint", "status"])
    _event(
        approval,
        "subject_changed",
        f"The subject changed: {voided} earlier decision(s) no longer count.",
    )
    _audit(approval, "subject_changed", voided=voided)
    publish_request(approval)
    return True


def _approvals(approval: ApprovalRequest) -> list[Decision]:
    return list(
        Decision.objects.filter(
            request=approval, voided_at__isnull=True, verdict=Decision.Verdict.APPROVE
        )
    )


def quorum_met(approval: ApprovalRequest) -> bool:
    approvals = [d for d in _approvals(approval) if d.approver_role in approval.approver_roles]
    if len(approvals) < approval.required_approvals:
        return False
    return not approval.owner_required or any(d.approver_role == Role.OWNER for d in approvals)


def approval_decide(
    *,
    approval: ApprovalRequest,
    actor: Membership,
    verdict: str,
    fingerprint_seen: str,
    stepped_up: bool,
    request: HttpRequest | None = None,
) -> ApprovalRequest:
    """Approve or reject. `fingerprint_seen` is the subject's state the decider was shown;
    `stepped_up` whether their session confirmed 2FA within STEP_UP_MAX_AGE."""
    if verdict not in Decision.Verdict.values:
        raise ValidationError("Choose approve or reject.")
    if not stepped_up:
        raise PermissionDenied(STEP_UP_REQUIRED)
    _refresh(approval.pk)
    return _decide(
        approval=approval,
        actor=actor,
        verdict=verdict,
        fingerprint_seen=fingerprint_seen,
        request=request,
    )


@transaction.atomic(durable=True)
def _decide(
    *,
    approval: ApprovalRequest,
    actor: Membership,
    verdict: str,
    fingerprint_seen: str,
    request: HttpRequest | None,
) -> ApprovalRequest:
    approval = (
        ApprovalRequest.objects.select_related("org")
        .select_for_update(of=("self",))
        .get(pk=approval.pk)
    )
    if approval.status == ApprovalRequest.Status.EXPIRED:
        raise ValidationError(REQUEST_EXPIRED)
    if approval.status != ApprovalRequest.Status.PENDING:
        raise ValidationError(NOT_PENDING.format(status=approval.get_status_display().lower()))
    if approval.requester_id == actor.user_id:
        raise ValidationError(SELF_APPROVAL)
    # The role as it is now, not as the page was loaded.
    role = Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
    if role is None or role not in approval.approver_roles:
        raise ValidationError(
            ROLE_NOT_ELIGIBLE.format(
                role=Role(role).label if role else "none",
                roles=" or ".join(Role(r).label for r in approval.approver_roles),
            )
        )
    if Decision.objects.filter(
        request=approval, approver_id=actor.user_id, voided_at__isnull=True
    ).exists():
        raise ValidationError(ALREADY_DECIDED)
    if fingerprint_seen != approval.fingerprint:
        raise ValidationError(SUBJECT_CHANGED)
    try:
        with transaction.atomic():
            Decision.objects.create(
                request=approval,
                approver_id=actor.user_id,
                approver_role=role,
                verdict=verdict,
                fingerprint=approval.fingerprint,
            )
    except IntegrityError:
        # Two tabs of the same person deciding at once: the constraint keeps one.
        raise ValidationError(ALREADY_DECIDED) from None
    label = "Approved" if verdict == Decision.Verdict.APPROVE else "Rejected"
    _event(approval, verdict, f"{label} by {actor.user.email} ({Role(role).label}).", actor.user)
    _audit(approval, verdict, actor=actor, request=request)
    audience_before = eligible_approver_ids(approval=approval)
    if verdict == Decision.Verdict.REJECT:
        approval.status = ApprovalRequest.Status.REJECTED
        approval.decided_at = timezone.now()
        approval.save(update_fields=["status", "decided_at"])
        _notify(
            approval,
            "approvals.decided",
            [approval.requester_id],
            f"Rejected: {approval_kind_get(approval.kind).label}",
        )
    elif quorum_met(approval):
        approval.status = ApprovalRequest.Status.APPROVED
        approval.decided_at = timezone.now()
        approval.save(update_fields=["status", "decided_at"])
        _event(approval, "quorum", "Enough approvals: carrying it out.")
        _notify(
            approval,
            "approvals.decided",
            [approval.requester_id],
            f"Approved: {approval_kind_get(approval.kind).label}",
        )
        if approval.not_before is None:
            transaction.on_commit(partial(approval_execute, approval_id=approval.pk), robust=True)
    publish_request(approval)
    publish_counts(org_id=approval.org_id, user_ids=audience_before)
    return approval


@transaction.atomic(durable=True)
def approval_execute(*, approval_id: int) -> ApprovalRequest:
    """Run the kind's handler for an approved request, after re-checking it: a changed subject
    voids the approvals, a value now in a higher tier needs that tier's approvals."""
    approval = (
        ApprovalRequest.objects.select_related("org")
        .select_for_update(of=("self",))
        .get(pk=approval_id)
    )
    if approval.status != ApprovalRequest.Status.APPROVED:
        return approval
    now = timezone.now()
    if approval.not_before is not None and approval.not_before > now:
        return approval
    registered = approval_kind_get(approval.kind)
    if _void_if_changed(approval):
        _notify(
            approval,
            "approvals.needed",
            eligible_approver_ids(approval=approval),
            f"Approve again: {registered.label} changed",
        )
        return approval
    if registered.current_value is not None and _escalate(approval, registered.current_value):
        return approval
    try:
        with transaction.atomic():
            registered.handler(approval)
    except (ValidationError, PermissionDenied) as exc:
        error = " ".join(getattr(exc, "messages", [str(exc)])) or HANDLER_FAILED
        return _fail(approval, error)
    except Exception:
        logger.exception("approval handler of %s failed for request %s", approval.kind, approval.pk)
        return _fail(approval, HANDLER_FAILED)
    approval.status = ApprovalRequest.Status.EXECUTED
    approval.executed_at = now
    approval.save(update_fields=["status", "executed_at"])
    _event(approval, "executed", "Carried out.")
    _audit(approval, "execute")
    people = {approval.requester_id, *(d.approver_id for d in _approvals(approval))}
    _notify(approval, "approvals.executed", people, f"Done: {registered.label}")
    publish_request(approval)
    return approval


def _escalate(approval: ApprovalRequest, current_value: Any) -> bool:
    """Re-evaluate the tier against the value now. True when more approvals are needed."""
    value = current_value(approval)
    if value is None:
        return False
    policy = policy_for(org=approval.org, kind=approval.kind)
    tier = tier_for_value(policy_tiers(policy), value)
    if tier.min_value <= approval.tier_min_value:
        return False
    old_required = approval.required_approvals
    approval.value = value
    _apply_tier(approval, tier)
    if quorum_met(approval):
        approval.save(
            update_fields=[
                "value",
                "tier_min_value",
                "required_approvals",
                "approver_roles",
                "owner_required",
            ]
        )
        return False
    approval.status = ApprovalRequest.Status.PENDING
    approval.save()
    _event(
        approval,
        "escalated",
        f"The value rose to {value} {approval.currency}: this tier needs "
        f"{approval.required_approvals} approval(s) (was {old_required}).",
    )
    _audit(approval, "escalate", value=str(value), required=approval.required_approvals)
    _notify(
        approval,
        "approvals.needed",
        eligible_approver_ids(approval=approval),
        f"More approvals needed: {approval_kind_get(approval.kind).label}",
    )
    publish_request(approval)
    return True


def _fail(approval: ApprovalRequest, error: str) -> ApprovalRequest:
    approval.status = ApprovalRequest.Status.FAILED
    approval.error = error
    approval.save(update_fields=["status", "error"])
    _event(approval, "failed", f"Could not be carried out: {error}")
    _audit(approval, "fail", error=error)
    people = {approval.requester_id, *(d.approver_id for d in _approvals(approval))}
    _notify(
        approval, "approvals.failed", people, f"Failed: {approval_kind_get(approval.kind).label}"
    )
    publish_request(approval)
    return approval


@transaction.atomic(durable=True)
def approval_cancel(
    *, approval: ApprovalRequest, actor: Membership, request: HttpRequest | None = None
) -> ApprovalRequest:
    approval = (
        ApprovalRequest.objects.select_related("org")
        .select_for_update(of=("self",))
        .get(pk=approval.pk)
    )
    if approval.status not in UNSETTLED:
        raise ValidationError(NOT_PENDING.format(status=approval.get_status_display().lower()))
    role = Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
    if approval.requester_id != actor.user_id and role != Role.OWNER:
        raise ValidationError(CANNOT_CANCEL)
    approval.status = ApprovalRequest.Status.CANCELLED
    approval.save(update_fields=["status"])
    _event(approval, "cancelled", f"Cancelled by {actor.user.email}.", actor.user)
    _audit(approval, "cancel", actor=actor, request=request)
    people = {approval.requester_id, *(d.approver_id for d in _approvals(approval))}
    people.discard(actor.user_id)
    _notify(
        approval,
        "approvals.decided",
        people,
        f"Cancelled: {approval_kind_get(approval.kind).label}",
    )
    publish_request(approval)
    return approval


def approvals_run_due() -> int:
    """Expire overdue requests and carry out delayed ones whose time has come (beat)."""
    now = timezone.now()
    done = 0
    overdue = ApprovalRequest.objects.filter(
        status=ApprovalRequest.Status.PENDING, expires_at__lte=now
    ).values_list("pk", flat=True)
    for pk in list(overdue):
        _refresh(pk)
        done += 1
    due = ApprovalRequest.objects.filter(
        status=ApprovalRequest.Status.APPROVED, not_before__lte=now
    ).values_list("pk", flat=True)
    for pk in list(due):
        approval_execute(approval_id=pk)
        done += 1
    return done


def approvals_release_member(
    *, membership: Membership, actor: Membership, request: HttpRequest | None = None
) -> None:
    """A member leaves (apps.orgs.signals.membership_removed, in the removal's transaction):
    what they asked for, and what was asked about them (a role grant), is cancelled, and their
    decisions on open requests no longer count. A removed membership is kept and may become
    active again on re-invitation: a grant asked about the old membership must not carry over."""
    now = timezone.now()
    about_them = Q(
        subject_type=ContentType.objects.get_for_model(Membership),
        subject_id=str(membership.pk),
    )
    asked = ApprovalRequest.objects.select_related("org").filter(
        Q(requester_id=membership.user_id) | about_them,
        org_id=membership.org_id,
        status__in=UNSETTLED,
    )
    for approval in asked.select_for_update(of=("self",)):
        approval.status = ApprovalRequest.Status.CANCELLED
        approval.save(update_fields=["status"])
        _event(approval, "cancelled", f"Cancelled: {membership.user.email} left the organization.")
        _audit(approval, "cancel", actor=actor, request=request, reason="requester removed")
        publish_request(approval)
    decided = Decision.objects.filter(
        request__org_id=membership.org_id,
        request__status__in=UNSETTLED,
        approver_id=membership.user_id,
        voided_at__isnull=True,
    ).select_related("request__org")
    for decision in decided:
        approval = decision.request
        Decision.objects.filter(pk=decision.pk).update(voided_at=now)
        if approval.status == ApprovalRequest.Status.APPROVED and not quorum_met(approval):
            # Approved but not yet carried out (a delayed request): it waits again.
            approval.status = ApprovalRequest.Status.PENDING
            approval.save(update_fields=["status"])
        _event(
            approval,
            "decision_voided",
            f"{membership.user.email} left the organization: their decision no longer counts.",
        )
        _audit(approval, "decision_void", actor=actor, request=request)
        publish_request(approval)


def approval_void(
    *, approval: ApprovalRequest, reason: str, actor: Membership | None = None
) -> ApprovalRequest:
    """The subject of a request is gone (a removed withdrawal destination voids the
    withdrawals waiting for it): cancel the request, pending or approved but not carried out,
    with `reason` on its timeline. Runs in the caller's transaction (the change that voids it
    and the cancellation commit together); a settled request is left as it is."""
    approval = (
        ApprovalRequest.objects.select_related("org")
        .select_for_update(of=("self",))
        .get(pk=approval.pk)
    )
    if approval.status not in UNSETTLED:
        return approval
    approval.status = ApprovalRequest.Status.CANCELLED
    approval.save(update_fields=["status"])
    _event(approval, "cancelled", f"Cancelled: {reason}", actor.user if actor else None)
    _audit(approval, "cancel", actor=actor, reason=reason)
    people = {approval.requester_id, *(d.approver_id for d in _approvals(approval))}
    _notify(
        approval,
        "approvals.decided",
        people,
        f"Cancelled: {approval_kind_get(approval.kind).label}",
    )
    publish_request(approval)
    return approval
