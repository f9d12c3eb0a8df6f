"""A run's journey, after the tick created it (ticks.py):

    CREATED ──claim (conditional UPDATE)──▶ RUNNING ──decide──▶ NOTHING_TO_DO | BLOCKED | FAILED
                                                      │
                                                      ├──▶ AWAITING_APPROVAL ──approved──▶ EXECUTING
                                                      └──▶ EXECUTING ──execute──▶ SUCCEEDED | FAILED

- The claim commits on its own, so the run page shows "Deciding" at once; a duplicated task
  finds nothing to claim.
- Deciding is one durable transaction: the action's reads, the caps, the approval check, the
  decision and its audit record commit together or not at all. A worker lost in the middle
  leaves RUNNING with nothing done, which the tick's stale sweep puts back in the queue.
- Executing calls the action outside our transaction (the business app's service owns its
  own); the action is idempotent per run (registry.py), so a worker lost in the middle is
  carried on by calling it again. Its answer is recorded in a last transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from decimal import Decimal
from functools import partial
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.core.amounts import round_down
from apps.core.trail import audit_record
from apps.market.conversion import ConversionError
from apps.notifications.services import notify
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability
from apps.schedules import live
from apps.schedules.models import DECIMAL_PLACES, Run, RunEvent, Workflow, plain
from apps.schedules.registry import Decision, Reference, RunContext, action_find
from apps.schedules.services import workflow_is_approved

logger = logging.getLogger(__name__)

PAUSED = "The workflow is paused: nothing was done."
ACTION_GONE = "Its action ({action}) is not available in this portal any more."
ACTION_ERROR = "The action failed unexpectedly; nothing was moved by this run. See the logs."
NOT_APPROVED = (
    "The workflow's terms are not approved (yet, or since they changed): nothing was done."
)
ABOVE_CAP = "{amount} {asset} is above what the caps allow now ({room} {asset}): nothing was done."
CAPPED = "Reduced from {amount} to {room} {asset} to stay within the caps."
CAPS_USED = "Today's cap is used up ({cap} {asset}): nothing was done."
ASSET_MISMATCH = "The action decided in {asset}, but the caps are in {cap_asset}: nothing was done."
CREATOR_GONE = "The person who set up this workflow is no longer a member: nothing was done."
WAITING_APPROVAL = "Waiting for approval of {amount} {asset}."
NO_VALUE = (
    "{amount} {asset} could not be valued for its approval ({reason}): nothing was done; the "
    "next run tries again."
)
APPROVAL_REJECTED = "Approval rejected by {who}: nothing was done."
APPROVAL_EXPIRED = "Approval expired before enough approvers agreed: nothing was done."
APPROVAL_CANCELLED = "The approval request was cancelled: nothing was done."
APPROVAL_GONE = "The approval request is gone: nothing was done."
APPROVAL_FAILED = "The approval request failed ({error}): nothing was done."

USED_STATES = (Run.State.AWAITING_APPROVAL, Run.State.EXECUTING, Run.State.SUCCEEDED)


def _event(run: Run, text: str) -> None:
    RunEvent.objects.create(run=run, state=run.state, text=text[:500])


def _creator(workflow: Workflow) -> Membership | None:
    return (
        Membership.objects.select_related("user", "org")
        .filter(org_id=workflow.org_id, user_id=workflow.created_by_id)
        .first()
    )


def _terms_setter(workflow: Workflow) -> Membership | None:
    """The member who last set the workflow's terms: a run's approval is asked in their name,
    so they cannot approve it (the creator, or anyone else allowed, can)."""
    if workflow.terms_set_by_id is None or workflow.terms_set_by_id == workflow.created_by_id:
        return _creator(workflow)
    return (
        Membership.objects.select_related("user", "org")
        .filter(org_id=workflow.org_id, user_id=workflow.terms_set_by_id)
        .first()
    )


def context_for(run: Run, workflow: Workflow, *, executing: bool = False) -> RunContext:
    approval = None
    if executing:
        approval = (
            run.approval_request
            if workflow.approval_mode == Workflow.ApprovalMode.EACH_RUN
            else workflow.approval_request
        )
    return RunContext(
        run_id=run.pk,
        workflow_id=workflow.pk,
        workflow_name=workflow.name,
        org=workflow.org,
        account=workflow.account,
        params=dict(workflow.params),
        slot=run.slot,
        scheduled_at=run.scheduled_at,
        created_by=_creator(workflow),
        approval=approval,
    )


def _day_bounds(workflow: Workflow, instant: datetime) -> tuple[datetime, datetime]:
    """The day (in the workflow's time zone) the instant falls in, as UTC instants."""
    zone = ZoneInfo(workflow.timezone or "UTC")
    local = instant.astimezone(zone).date()
    start = datetime.combine(local, time(0), tzinfo=zone)
    end = datetime.combine(local + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


def used_today(workflow: Workflow, run: Run) -> Decimal:
    start, end = _day_bounds(workflow, run.scheduled_at)
    total = (
        Run.objects.filter(
            workflow=workflow,
            state__in=USED_STATES,
            scheduled_at__gte=start,
            scheduled_at__lt=end,
        )
        .exclude(pk=run.pk)
        .aggregate(total=models.Sum("amount"))["total"]
    )
    return Decimal(total or 0)


def _audience(workflow: Workflow) -> list[int]:
    """Who hears of a run: its creator and the members who may manage workflows."""
    ids = {workflow.created_by_id}
    for member in Membership.objects.filter(org_id=workflow.org_id):
        if member.can(Capability.REQUEST_FUNDING) or member.can(Capability.MANAGE_POLICIES):
            ids.add(member.user_id)
    return sorted(ids)


NOTIFY_KIND: dict[str, str] = {
    Run.State.SUCCEEDED: "schedules.run_done",
    Run.State.NOTHING_TO_DO: "schedules.run_nothing",
    Run.State.BLOCKED: "schedules.run_failed",
    Run.State.FAILED: "schedules.run_failed",
    Run.State.AWAITING_APPROVAL: "schedules.run_waiting",
}


def _settle(run: Run, workflow: Workflow, state: str, text: str, **fields: object) -> None:
    """Move the run to `state` (inside the caller's transaction): event, audit, notification,
    live page."""
    now = timezone.now()
    run.state = state
    for name, value in fields.items():
        setattr(run, name, value)
    if state in Run.SETTLED:
        run.finished_at = now
    run.save()
    _event(run, text)
    audit_record(
        action=f"schedules.run_{state}",
        org=workflow.org,
        target=run,
        detail={
            "workflow": workflow.pk,
            "slot": run.slot,
            "decision": run.decision,
            "amount": plain(run.amount) if run.amount is not None else None,
            "asset": run.asset,
            "inputs": run.inputs,
            "reference": run.reference,
            "outcome": run.outcome,
        },
    )
    kind = NOTIFY_KIND.get(state)
    if kind is not None:
        notify(
            org=workflow.org,
            user_ids=_audience(workflow),
            kind=kind,
            title=f"{workflow.name}: {Run.State(state).label.lower()}",
            body=text,
            link=live.run_url(run),
        )
    live.run_changed_on_commit(run)


def run_claim(*, run_id: int) -> bool:
    """CREATED → RUNNING by a conditional update, committed at once. False: someone else has
    it (a duplicated task), or it is past that."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        claimed = Run.objects.filter(pk=run_id, state=Run.State.CREATED).update(
            state=Run.State.RUNNING, started_at=now, updated_at=now
        )
        if claimed:
            run = Run.objects.get(pk=run_id)
            _event(run, "Deciding: reading balances and prices.")
            live.run_started_on_commit(run)
    return bool(claimed)


@transaction.atomic(durable=True)
def run_decide(*, run_id: int) -> Run:
    run = Run.objects.select_for_update().get(pk=run_id)
    if run.state != Run.State.RUNNING:
        return run
    # The workflow's row lock serialises the day cap across runs of one workflow.
    workflow = (
        Workflow.objects.select_for_update(of=("self",))
        .select_related("org", "account")
        .get(pk=run.workflow_id)
    )
    if workflow.status != Workflow.Status.ACTIVE:
        _settle(run, workflow, Run.State.BLOCKED, PAUSED, decision=PAUSED)
        return run
    action = action_find(workflow.action)
    if action is None:
        text = ACTION_GONE.format(action=workflow.action)
        _settle(run, workflow, Run.State.FAILED, text, decision=text)
        return run
    context = context_for(run, workflow)
    try:
        with transaction.atomic():
            decision = action.decide(context)
    except ValidationError as error:
        text = " ".join(error.messages)
        _settle(run, workflow, Run.State.FAILED, text, decision=text[:500])
        return run
    except Exception:
        logger.exception("workflow %s: action %s failed to decide", workflow.pk, action.key)
        _settle(run, workflow, Run.State.FAILED, ACTION_ERROR, decision=ACTION_ERROR)
        return run
    run.inputs = decision.inputs
    run.asset = decision.asset
    run.decided_at = timezone.now()
    if decision.nothing_to_do:
        _settle(
            run,
            workflow,
            Run.State.NOTHING_TO_DO,
            f"Nothing to do: {decision.text}",
            decision=decision.text[:500],
            amount=Decimal(0),
        )
        return run
    _decide_amount(run, workflow, decision)
    return run


def _decide_amount(run: Run, workflow: Workflow, decision: Decision) -> None:
    # Cut down to what the run's column holds: PostgreSQL would round a 9th decimal half away
    # from zero, so the stored (and executed) amount could exceed what the action decided.
    amount = decision.amount or Decimal(0)
    if round_down(amount, DECIMAL_PLACES) != amount:
        amount = round_down(amount, DECIMAL_PLACES)
    text = decision.text
    if decision.asset != workflow.cap_asset:
        blocked = ASSET_MISMATCH.format(asset=decision.asset, cap_asset=workflow.cap_asset)
        _settle(run, workflow, Run.State.BLOCKED, blocked, decision=text, amount=amount)
        return
    room = Decimal(
        plain(min(workflow.per_run_cap, workflow.per_day_cap - used_today(workflow, run)))
    )
    if room <= 0:
        blocked = CAPS_USED.format(cap=workflow.per_day_cap_text, asset=workflow.cap_asset)
        _settle(run, workflow, Run.State.BLOCKED, blocked, decision=text, amount=amount)
        return
    if amount > room:
        if not decision.divisible:
            blocked = ABOVE_CAP.format(amount=amount, room=room, asset=decision.asset)
            _settle(run, workflow, Run.State.BLOCKED, blocked, decision=text, amount=amount)
            return
        text = f"{text} {CAPPED.format(amount=amount, room=room, asset=decision.asset)}"
        amount = room
    run.amount = amount
    run.decision = text[:500]
    if workflow.approval_mode == Workflow.ApprovalMode.ONCE:
        if not workflow_is_approved(workflow):
            _settle(run, workflow, Run.State.BLOCKED, NOT_APPROVED)
            return
        _settle(run, workflow, Run.State.EXECUTING, f"Decided: {text} Executing (approved once).")
        transaction.on_commit(partial(_enqueue, run.pk), robust=True)
        return
    creator = _creator(workflow)
    if creator is None:
        _settle(run, workflow, Run.State.BLOCKED, CREATOR_GONE)
        return
    from apps.schedules.approval_kind import run_approval_request

    # The request's fingerprint reads the run's amount from the database.
    run.save(update_fields=["amount", "decision", "inputs", "asset", "decided_at", "updated_at"])
    try:
        run.approval_request = run_approval_request(
            run=run, workflow=workflow, requester=_terms_setter(workflow) or creator
        )
    except ConversionError as error:
        # Fail closed: approvers cannot be chosen by value without a current price.
        blocked = NO_VALUE.format(amount=plain(amount), asset=run.asset, reason=error.message)
        _settle(run, workflow, Run.State.BLOCKED, blocked, outcome=blocked[:500])
        return
    _settle(
        run,
        workflow,
        Run.State.AWAITING_APPROVAL,
        f"Decided: {text} " + WAITING_APPROVAL.format(amount=amount, asset=run.asset),
    )


def _enqueue(run_id: int) -> None:
    from apps.schedules.tasks import run_execute_task

    run_execute_task.delay(run_id)


def run_approved(*, run: Run) -> None:
    """The run's approval reached its quorum (in the approval's transaction): execute it."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.state != Run.State.AWAITING_APPROVAL:
        return
    workflow = Workflow.objects.select_related("org").get(pk=run.workflow_id)
    _settle(run, workflow, Run.State.EXECUTING, "Approved: executing.")
    transaction.on_commit(partial(_enqueue, run.pk), robust=True)


def approval_end_reason(approval: ApprovalRequest, *, now: datetime) -> str | None:
    """Why a run's approval can no longer be given (None: it may still be)."""
    status = approval.status
    if status == ApprovalRequest.Status.REJECTED:
        rejecter = (
            approval.decisions.filter(verdict="reject", voided_at__isnull=True)
            .select_related("approver")
            .order_by("-created_at")
            .first()
        )
        return APPROVAL_REJECTED.format(
            who=rejecter.approver.email if rejecter is not None else "an approver"
        )
    if status == ApprovalRequest.Status.EXPIRED or (
        status == ApprovalRequest.Status.PENDING and approval.expires_at <= now
    ):
        return APPROVAL_EXPIRED
    if status == ApprovalRequest.Status.CANCELLED:
        return APPROVAL_CANCELLED
    if status == ApprovalRequest.Status.FAILED:
        return APPROVAL_FAILED.format(error=approval.error or "see the request")
    return None


@transaction.atomic(durable=True)
def run_approval_ended(*, run_id: int, now: datetime | None = None) -> Run:
    """A run waiting for its approval whose request was rejected, expired, cancelled or failed
    leaves "waiting for approval": it is not run, with the reason (notified, audited, live)."""
    now = now or timezone.now()
    run = Run.objects.select_for_update().get(pk=run_id)
    if run.state != Run.State.AWAITING_APPROVAL:
        return run
    approval = (
        ApprovalRequest.objects.filter(pk=run.approval_request_id).first()
        if run.approval_request_id is not None
        else None
    )
    reason = APPROVAL_GONE if approval is None else approval_end_reason(approval, now=now)
    if reason is None:
        return run
    workflow = Workflow.objects.select_related("org").get(pk=run.workflow_id)
    _settle(run, workflow, Run.State.BLOCKED, reason, outcome=reason[:500])
    return run


def runs_settle_archived(*, workflow: Workflow, text: str) -> list[int]:
    """In the archiving transaction: the workflow's runs not yet under way (queued, or
    waiting for approval) are settled as not run. Returns their ids."""
    waiting = Run.objects.select_for_update().filter(
        workflow=workflow, state__in=(Run.State.CREATED, Run.State.AWAITING_APPROVAL)
    )
    settled = []
    for run in waiting:
        _settle(run, workflow, Run.State.BLOCKED, text, outcome=text[:500])
        settled.append(run.pk)
    return settled


def runs_with_ended_approvals(*, now: datetime) -> list[int]:
    """Runs waiting for approval whose request can no longer be approved (the tick's sweep)."""
    return list(
        Run.objects.filter(state=Run.State.AWAITING_APPROVAL)
        .filter(
            models.Q(approval_request__isnull=True)
            | models.Q(
                approval_request__status__in=(
                    ApprovalRequest.Status.REJECTED,
                    ApprovalRequest.Status.EXPIRED,
                    ApprovalRequest.Status.CANCELLED,
                    ApprovalRequest.Status.FAILED,
                )
            )
            | models.Q(
                approval_request__status=ApprovalRequest.Status.PENDING,
                approval_request__expires_at__lte=now,
            )
        )
        .values_list("pk", flat=True)[:500]
    )


def run_act(*, run_id: int) -> Run:
    """EXECUTING: call the action's execute (idempotent per run) and record its answer."""
    run = Run.objects.get(pk=run_id)
    if run.state != Run.State.EXECUTING:
        return run
    # Claim this attempt: of two tasks that saw the same row (approval and a stale sweep), one
    # moves updated_at on and the other finds nothing to claim.
    if not Run.objects.filter(
        pk=run.pk, state=Run.State.EXECUTING, updated_at=run.updated_at
    ).update(updated_at=timezone.now()):
        return run
    workflow = Workflow.objects.select_related("org", "account").get(pk=run.workflow_id)
    action = action_find(workflow.action)
    # As decided: the stored column pads to 8 places, which the action need not see.
    amount = Decimal(plain(run.amount)) if run.amount is not None else None
    decision = Decision(amount=amount, asset=run.asset, text=run.decision, inputs=dict(run.inputs))
    state: str
    try:
        if action is None:
            raise ValidationError(ACTION_GONE.format(action=workflow.action))
        reference: Reference | None = action.execute(
            context_for(run, workflow, executing=True), decision
        )
        state, text = Run.State.SUCCEEDED, ""
    except ValidationError as error:
        reference, state, text = None, Run.State.FAILED, " ".join(error.messages)
    except Exception:
        logger.exception("workflow %s: action %s failed to execute", workflow.pk, workflow.action)
        reference, state, text = None, Run.State.FAILED, ACTION_ERROR
    return _record(run_id=run.pk, state=state, text=text, reference=reference)


@transaction.atomic(durable=True)
def _record(*, run_id: int, state: str, text: str, reference: Reference | None) -> Run:
    run = Run.objects.select_for_update().get(pk=run_id)
    if run.state != Run.State.EXECUTING:
        return run
    workflow = Workflow.objects.select_related("org").get(pk=run.workflow_id)
    if reference is not None:
        outcome = reference.outcome or reference.label
        _settle(
            run,
            workflow,
            state,
            f"Done: {outcome}",
            reference=reference.as_json(),
            outcome=outcome[:500],
        )
    else:
        _settle(run, workflow, state, f"Failed: {text}", outcome=text[:500])
    return run


def run_execute(*, run_id: int) -> Run | None:
    """The task's whole job: claim, decide, execute, each step only if the run is at it."""
    run = Run.objects.filter(pk=run_id).only("state").first()
    if run is None:
        return None
    if run.state == Run.State.CREATED:
        # Only the task that claims the run decides it; a duplicate stops here.
        if not run_claim(run_id=run_id):
            return None
        run = run_decide(run_id=run_id)
    if run.state == Run.State.EXECUTING:
        run = run_act(run_id=run_id)
    return run


@transaction.atomic(durable=True)
def run_outcome_record(*, run_id: int, outcome: str, failed: bool = False) -> Run:
    """For the business apps: what the run's creation became later (the withdrawal it asked
    for was sent, or refused), shown on the run. Audited, notified on failure."""
    run = Run.objects.select_for_update().get(pk=run_id)
    workflow = Workflow.objects.select_related("org").get(pk=run.workflow_id)
    run.outcome = outcome[:500]
    if failed:
        _settle(run, workflow, Run.State.FAILED, f"Failed later: {outcome}")
    else:
        run.save(update_fields=["outcome", "updated_at"])
        _event(run, outcome)
        audit_record(
            action="schedules.run_outcome",
            org=workflow.org,
            target=run,
            detail={"outcome": run.outcome},
        )
        live.run_changed_on_commit(run)
    return run
