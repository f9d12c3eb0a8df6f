"""Archiving a workflow: it never runs again, cannot be changed or resumed, its runs stay (for
the audit trail) and those still waiting are settled as not run; audited; roles checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.schedules import services
from apps.schedules.models import Run, Workflow
from apps.schedules.ticks import schedules_tick
from tests.schedules.conftest import rewind, workflow_input

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 6, 1, 9, 0, 20, tzinfo=UTC)


def url(name: str, **kwargs: object) -> str:
    return reverse(f"schedules:{name}", kwargs={"org": "acme", **kwargs})


def test_an_archived_workflow_keeps_its_runs_and_never_runs_again(
    make_workflow, client_for, admin, treasurer, viewer
) -> None:
    workflow = make_workflow()
    done = Run.objects.create(
        org=workflow.org,
        workflow=workflow,
        slot="2026-05-31T10:00 Europe/London",
        scheduled_at=NOW - timedelta(days=1),
        state=Run.State.SUCCEEDED,
        outcome="Moved 1 BTC",
    )
    waiting = Run.objects.create(
        org=workflow.org,
        workflow=workflow,
        slot="2026-06-01T09:00 Europe/London",
        scheduled_at=NOW - timedelta(hours=1),
        state=Run.State.AWAITING_APPROVAL,
    )
    # A viewer may not archive; a GET does nothing.
    assert client_for(viewer).post(url("workflow-archive", pk=workflow.pk)).status_code == 403
    assert client_for(admin).get(url("workflow-archive", pk=workflow.pk)).status_code == 405
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.ACTIVE

    response = client_for(admin).post(url("workflow-archive", pk=workflow.pk))
    assert response.status_code == 302
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.ARCHIVED
    assert workflow.archived_at is not None
    record = AuditRecord.objects.get(
        action="schedules.workflow_archive", target_id=str(workflow.pk)
    )
    assert record.actor_email == "admin@acme.test"
    assert record.detail["runs_not_run"] == [waiting.pk]
    # Its runs stay: the one done as it was, the waiting one settled as not run, with why.
    done.refresh_from_db()
    waiting.refresh_from_db()
    assert done.state == Run.State.SUCCEEDED
    assert waiting.state == Run.State.BLOCKED
    assert waiting.outcome == services.ARCHIVED_RUN.format(email="admin@acme.test")

    # It claims no slot any more.
    rewind(workflow, to=NOW - timedelta(minutes=1))
    assert schedules_tick(now=NOW).created == []
    # It cannot be resumed, paused, changed or archived again.
    for change in (
        lambda: services.workflow_resume(membership=admin, workflow=workflow),
        lambda: services.workflow_pause(membership=admin, workflow=workflow),
        lambda: services.workflow_archive(membership=admin, workflow=workflow),
        lambda: services.workflow_update(
            membership=treasurer, workflow=workflow, data=workflow_input(treasurer, name="New")
        ),
    ):
        with pytest.raises(ValidationError, match="archived"):
            change()
    page = client_for(admin).get(url("workflow-detail", pk=workflow.pk)).content.decode()
    assert 'data-status="archived"' in page
    assert url("workflow-archive", pk=workflow.pk) not in page
    assert url("workflow-edit", pk=workflow.pk) not in page
    assert done.slot in page
    edit = client_for(treasurer).get(url("workflow-edit", pk=workflow.pk))
    assert edit.status_code == 302
    # Still listed, marked archived.
    listing = client_for(viewer).get(url("workflow-list")).content.decode()
    assert workflow.name in listing
    assert "Archived" in listing
