"""Live parts of the workflow pages, sent after commit through the members' own groups
(apps.core.realtime.member_event_on_commit) and swapped in by the live socket every page of
the organization keeps open. Every member may see workflows (Capability.VIEW), so every
current member receives them. Times are shown in each member's own zone (as the pages do):
a part is rendered once per distinct zone among its recipients, and each member receives the
rendering for theirs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from apps.core.realtime import member_event_on_commit
from apps.orgs.models import Membership
from apps.schedules.models import Run, Workflow

Parts = list[tuple[str, str]]


def run_url(run: Run) -> str:
    return reverse("schedules:run-detail", kwargs={"org": run.workflow.org.slug, "pk": run.pk})


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def members_by_zone(org_id: int) -> dict[str, list[int]]:
    """The organization's current members, grouped by their own time zone."""
    zones: dict[str, list[int]] = defaultdict(list)
    for user_id, zone in Membership.objects.filter(org_id=org_id).values_list(
        "user_id", "user__time_zone"
    ):
        zones[zone or "UTC"].append(user_id)
    return dict(zones)


def send_per_zone(org_id: int, render: Callable[[], Parts]) -> None:
    """Render the parts once per distinct zone among the members and send each member the
    rendering made in their zone."""
    for zone, user_ids in sorted(members_by_zone(org_id).items()):
        with timezone.override(_zone(zone)):
            parts = render()
        member_event_on_commit(org_id=org_id, user_ids=user_ids, parts=parts)


def _publish_run(run_id: int) -> None:
    run = Run.objects.select_related("workflow", "workflow__org", "org").filter(pk=run_id).first()
    if run is None:
        return
    context = {"run": run, "workflow": run.workflow, "events": list(run.events.all()), "oob": True}

    def render() -> Parts:
        return [
            (f"run-{run.pk}", render_to_string("schedules/run_detail.html#run-card", context)),
            (
                f"run-row-{run.pk}",
                render_to_string("schedules/workflow_detail.html#run-row-state", context),
            ),
        ]

    send_per_zone(run.org_id, render)


def _publish_run_table(run_id: int) -> None:
    """A run started: the workflow's run list, with the new row, to its open pages."""
    from apps.schedules.selectors import workflow_runs

    run = Run.objects.select_related("workflow", "workflow__org").filter(pk=run_id).first()
    if run is None:
        return
    workflow = run.workflow
    context = {"workflow": workflow, "runs": workflow_runs(workflow=workflow), "oob": True}

    def render() -> Parts:
        html = render_to_string("schedules/workflow_detail.html#run-table", context)
        return [(f"run-table-{workflow.pk}", html)]

    send_per_zone(run.org_id, render)


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

    def render() -> Parts:
        return [
            (
                f"workflow-{workflow.pk}",
                render_to_string("schedules/workflow_list.html#workflow-state", context),
            ),
            (
                f"workflow-status-{workflow.pk}",
                render_to_string("schedules/workflow_detail.html#workflow-status", context),
            ),
        ]

    send_per_zone(workflow.org_id, render)


def workflow_changed_on_commit(workflow: Workflow) -> None:
    transaction.on_commit(partial(_publish_workflow, workflow.pk), robust=True)
