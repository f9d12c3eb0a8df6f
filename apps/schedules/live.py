"""Live parts of the workflow pages, sent after commit through the members' own groups
(apps.core.realtime.member_event_on_commit) and swapped in by the live socket every page of
the organization keeps open. Every member may see workflows (Capability.VIEW), so every
current member receives them; one rendering serves them all (times in UTC, slots in their
own zone, so the part does not depend on the viewer)."""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from apps.core.realtime import member_event_on_commit
from apps.orgs.models import Membership
from apps.schedules.models import Run, Workflow


def run_url(run: Run) -> str:
    return reverse("schedules:run-detail", kwargs={"org": run.workflow.org.slug, "pk": run.pk})


def _members(org_id: int) -> list[int]:
    return list(Membership.objects.filter(org_id=org_id).values_list("user_id", flat=True))


def _publish_run(run_id: int) -> None:
    run = Run.objects.select_related("workflow", "workflow__org", "org").filter(pk=run_id).first()
    if run is None:
        return
    context = {"run": run, "workflow": run.workflow, "events": list(run.events.all()), "oob": True}
    parts: list[tuple[str, str]] = [
        (f"run-{run.pk}", render_to_string("schedules/run_detail.html#run-card", context)),
        (
            f"run-row-{run.pk}",
            render_to_string("schedules/workflow_detail.html#run-row-state", context),
        ),
    ]
    member_event_on_commit(org_id=run.org_id, user_ids=_members(run.org_id), parts=parts)


def _publish_run_table(run_id: int) -> None:
    """A run started: the workflow's run list, with the new row, to its open pages."""
    from apps.schedules.selectors import workflow_runs

    run = Run.objects.select_related("workflow", "workflow__org").filter(pk=run_id).first()
    if run is None:
        return
    workflow = run.workflow
    context = {"workflow": workflow, "runs": workflow_runs(workflow=workflow), "oob": True}
    html = render_to_string("schedules/workflow_detail.html#run-table", context)
    member_event_on_commit(
        org_id=run.org_id, user_ids=_members(run.org_id), parts=[(f"run-table-{workflow.pk}", html)]
    )


def run_started_on_commit(run: Run) -> None:
    """Publish the workflow's run list (with the new run in it) and the run's card."""
    transaction.on_commit(partial(_publish_run_table, run.pk), robust=True)
    run_changed_on_commit(run)


def run_changed_on_commit(run: Run) -> None:
    """Publish the run's card and row once the change has committed (read back then)."""
    transaction.on_commit(partial(_publish_run, run.pk), robust=True)


def _publish_workflow(workflow_id: int) -> None:
    workflow = Workflow.objects.select_related("org", "account").filter(pk=workflow_id).first()
    if workflow is None:
        return
    context = {"workflow": workflow, "oob": True}
    parts: list[tuple[str, str]] = [
        (
            f"workflow-{workflow.pk}",
            render_to_string("schedules/workflow_list.html#workflow-state", context),
        ),
        (
            f"workflow-status-{workflow.pk}",
            render_to_string("schedules/workflow_detail.html#workflow-status", context),
        ),
    ]
    member_event_on_commit(org_id=workflow.org_id, user_ids=_members(workflow.org_id), parts=parts)


def workflow_changed_on_commit(workflow: Workflow) -> None:
    transaction.on_commit(partial(_publish_workflow, workflow.pk), robust=True)
