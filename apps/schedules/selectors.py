"""Reads for the workflow pages, always scoped to the member's organization."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from apps.approvals.selectors import approvals_waiting
from apps.orgs.models import Membership, Organization
from apps.schedules.models import Run, Workflow


def workflows_of(*, org: Organization) -> QuerySet[Workflow]:
    return Workflow.objects.filter(org=org).select_related("account", "created_by", "org")


def workflow_get(*, org: Organization, pk: int) -> Workflow:
    workflow = workflows_of(org=org).filter(pk=pk).first()
    if workflow is None:
        raise Http404("No such workflow.")
    return workflow


def workflow_runs(*, workflow: Workflow, limit: int = 50) -> list[Run]:
    return list(workflow.runs.select_related("workflow", "workflow__org")[:limit])


def run_get(*, org: Organization, pk: int) -> Run:
    run = (
        Run.objects.filter(org=org, pk=pk)
        .select_related("workflow", "workflow__org", "workflow__account", "approval_request")
        .first()
    )
    if run is None:
        raise Http404("No such run.")
    return run


DASHBOARD_ROWS = 5
RECENT_FAILURES = timedelta(days=7)


def runs_waiting_for(*, membership: Membership, limit: int = DASHBOARD_ROWS) -> list[Run]:
    """Runs waiting for an approval this member may give and has not given (one query)."""
    return list(
        Run.objects.filter(
            org_id=membership.org_id,
            state=Run.State.AWAITING_APPROVAL,
            approval_request__in=approvals_waiting(membership=membership),
        )
        .select_related("workflow", "workflow__org")
        .order_by("scheduled_at", "id")[:limit]
    )


def runs_failed_recently(
    *, org: Organization, now: datetime | None = None, limit: int = DASHBOARD_ROWS
) -> list[Run]:
    """Runs of the last days that failed or were not run, newest first (one query)."""
    since = (now or timezone.now()) - RECENT_FAILURES
    return list(
        Run.objects.filter(
            org=org, state__in=(Run.State.FAILED, Run.State.BLOCKED), finished_at__gte=since
        )
        .select_related("workflow", "workflow__org")
        .order_by("-finished_at", "-id")[:limit]
    )


def workflows_next(*, org: Organization, limit: int = DASHBOARD_ROWS) -> list[Workflow]:
    """The active workflows, soonest next slot first (one query)."""
    return list(
        Workflow.objects.filter(org=org, status=Workflow.Status.ACTIVE, next_slot_at__isnull=False)
        .select_related("org")
        .order_by("next_slot_at", "id")[:limit]
    )
