"""Reads for the workflow pages, always scoped to the member's organization."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from apps.orgs.models import Organization
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
