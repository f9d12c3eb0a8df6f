"""The workflow pages: every view's wrong method, outsider, too-low role, normal case and htmx
fragment; bad schedule input shown next to its field; the live preview."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.schedules.models import Run, Workflow
from apps.schedules.services import CANNOT_MANAGE
from apps.schedules.slots import CRON_INVALID, CRON_NEVER, ZONE_INVALID
from tests.factories import master_account
from tests.schedules import actions

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def client_for() -> Any:
    """Signed in, 2FA-verified and freshly stepped up (setting up a workflow asks for it)."""
    from tests.approvals.conftest import stepped_up_client

    return stepped_up_client


def url(name: str, org: str = "acme", **kwargs: Any) -> str:
    return reverse(f"schedules:{name}", kwargs={"org": org, **kwargs})


def form_data(org: Any, **overrides: str) -> dict[str, str]:
    data = {
        "name": "Sweep BTC nightly",
        "account": str(master_account(org).pk),
        "schedule_kind": "cron",
        "cron": "0 2 * * *",
        "timezone": "Europe/London",
        "interval_minutes": "",
        "action": actions.KEY,
        "p-asset": "btc",
        "p-keep": "1.5",
        "p-destination": "cold-1",
        "p-delay_ms": "",
        "per_run_cap": "2",
        "per_day_cap": "4",
        "approval_mode": "once",
        "catch_up": "skip",
    }
    data.update(overrides)
    return data


def field_block(html: str, field: str) -> str:
    """The form's <div class="field"> that holds the input named `field`."""
    blocks: list[str] = re.findall(r'<div class="field">.*?</div>', html, flags=re.S)
    for block in blocks:
        if f'name="{field}"' in block:
            return block
    raise AssertionError(f"no field {field} in the page")


def test_a_treasurer_creates_a_workflow_that_asks_for_approval(client_for, treasurer, org) -> None:
    response = client_for(treasurer).post(url("workflow-create"), form_data(org))
    workflow = Workflow.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("workflow-detail", pk=workflow.pk)
    assert workflow.params == {
        "asset": "BTC",
        "keep": "1.5",
        "destination": "cold-1",
        "delay_ms": None,
    }
    assert workflow.cap_asset == "BTC"
    assert workflow.next_slot.endswith("T02:00 Europe/London")
    assert workflow.approval_request is not None
    assert AuditRecord.objects.filter(action="schedules.workflow_create").count() == 1


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"cron": "0 25 * * *"}, "cron", CRON_INVALID),
        ({"cron": "0 0 30 2 *"}, "cron", CRON_NEVER),
        ({"timezone": "Europe/Londn"}, "timezone", ZONE_INVALID),
        ({"per_run_cap": "-1"}, "per_run_cap", "A cap must be a positive amount."),
        ({"per_run_cap": "0.123456789"}, "per_run_cap", "At most 8 decimal places."),
        ({"per_run_cap": "5"}, "per_run_cap", "The per-run cap cannot be above the per-day cap."),
        ({"p-keep": "-3"}, "p-keep", "Ensure this value is greater than or equal to 0."),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_saves_nothing(
    client_for, treasurer, org, overrides, field, message
) -> None:
    response = client_for(treasurer).post(url("workflow-create"), form_data(org, **overrides))
    assert response.status_code == 400
    assert message in field_block(response.content.decode(), field)
    assert not Workflow.objects.exists()


def test_the_preview_lists_the_next_five_runs_as_the_user_types(client_for, treasurer) -> None:
    response = client_for(treasurer).get(
        url("schedule-preview"),
        {"schedule_kind": "cron", "cron": "30 9 * * 1-5", "timezone": "America/New_York"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("<li>") == 5
    assert "09:30 America/New_York" in html
    assert "<html" not in html  # the fragment only


def test_the_preview_says_what_is_wrong_with_a_zone(client_for, treasurer) -> None:
    response = client_for(treasurer).get(
        url("schedule-preview"), {"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, **HTMX
    )
    assert ZONE_INVALID in response.content.decode()


def test_the_preview_of_an_interval(client_for, treasurer) -> None:
    response = client_for(treasurer).get(
        url("schedule-preview"), {"schedule_kind": "interval", "interval_minutes": "90"}, **HTMX
    )
    assert response.content.decode().count("UTC <span") == 5


def test_choosing_an_action_brings_its_fields(client_for, treasurer) -> None:
    html = (
        client_for(treasurer)
        .get(url("action-params"), {"action": actions.KEY}, **HTMX)
        .content.decode()
    )
    assert 'name="p-asset"' in html
    assert 'name="p-keep"' in html


@pytest.mark.parametrize("role", ["viewer", "trader", "approver", "admin"])
def test_who_cannot_request_funding_cannot_create(client_for, request, role, org) -> None:
    member = request.getfixturevalue(role)
    assert client_for(member).post(url("workflow-create"), form_data(org)).status_code == 403
    assert not Workflow.objects.exists()


def test_every_member_sees_the_list_and_an_outsider_does_not(
    client_for, viewer, outsider, make_workflow
) -> None:
    workflow = make_workflow()
    page = client_for(viewer).get(url("workflow-list"))
    assert workflow.name in page.content.decode()
    fragment = client_for(viewer).get(url("workflow-list"), **HTMX).content.decode()
    assert (
        fragment.startswith('\n<div id="workflow-table"') or 'id="workflow-table"' in fragment[:200]
    )
    assert client_for(outsider).get(url("workflow-list")).status_code == 404
    assert client_for(outsider).get(url("workflow-detail", pk=workflow.pk)).status_code == 404


def test_a_workflow_of_another_organization_is_not_found(
    client_for, outsider, make_workflow
) -> None:
    workflow = make_workflow()
    other = outsider.org.slug
    assert (
        client_for(outsider).get(url("workflow-detail", org=other, pk=workflow.pk)).status_code
        == 404
    )
    run = Run.objects.create(
        org=workflow.org,
        workflow=workflow,
        slot="2026-01-01T09:00 UTC",
        scheduled_at=workflow.created_at,
    )
    assert client_for(outsider).get(url("run-detail", org=other, pk=run.pk)).status_code == 404


def test_an_admin_pauses_and_resumes_and_a_viewer_cannot(
    client_for, admin, viewer, make_workflow
) -> None:
    workflow = make_workflow()
    assert client_for(viewer).post(url("workflow-pause", pk=workflow.pk)).status_code == 403
    assert client_for(admin).get(url("workflow-pause", pk=workflow.pk)).status_code == 405
    client_for(admin).post(url("workflow-pause", pk=workflow.pk))
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.PAUSED
    assert workflow.paused_reason == "Paused by admin@acme.test"
    client_for(admin).post(url("workflow-resume", pk=workflow.pk))
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.ACTIVE
    assert list(
        AuditRecord.objects.filter(action__startswith="schedules.workflow_")
        .values_list("action", flat=True)
        .order_by("id")
    ) == ["schedules.workflow_create", "schedules.workflow_pause", "schedules.workflow_resume"]
    assert CANNOT_MANAGE  # the message the service raises for a too-low role


def test_the_edit_form_shows_the_workflow_and_saves_changes(
    client_for, treasurer, org, make_workflow
) -> None:
    workflow = make_workflow()
    page = client_for(treasurer).get(url("workflow-edit", pk=workflow.pk)).content.decode()
    assert 'value="0 * * * *"' in page
    assert 'name="p-keep"' in page
    response = client_for(treasurer).post(
        url("workflow-edit", pk=workflow.pk), form_data(org, name="Renamed")
    )
    assert response.status_code == 302
    workflow.refresh_from_db()
    assert workflow.name == "Renamed"


def test_the_run_page_shows_its_decision_and_fragment(client_for, viewer, make_workflow) -> None:
    workflow = make_workflow()
    run = Run.objects.create(
        org=workflow.org,
        workflow=workflow,
        slot="2026-01-01T09:00 UTC",
        scheduled_at=workflow.created_at,
        state=Run.State.NOTHING_TO_DO,
        decision="0.5 BTC spendable, not above the 1 kept.",
        inputs={"spendable BTC": "0.5"},
    )
    page = client_for(viewer).get(url("run-detail", pk=run.pk)).content.decode()
    assert "not above the 1 kept" in page
    assert "spendable BTC: 0.5" in page
    fragment = client_for(viewer).get(url("run-detail", pk=run.pk), **HTMX).content.decode()
    assert f'id="run-{run.pk}"' in fragment
    assert "<html" not in fragment


def test_anonymous_visitors_are_sent_to_sign_in(client: Client, org) -> None:
    response = client.get(url("workflow-list"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_a_stale_session_confirms_its_second_factor_and_gets_back_what_it_typed(
    treasurer, org
) -> None:
    from tests.conftest import verified_client

    client = verified_client(treasurer.user)  # signed in long ago: no fresh confirmation
    response = client.post(url("workflow-create"), form_data(org, **{"p-keep": "2.75"}))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:step-up"))
    assert not Workflow.objects.exists()
    page = client.get(url("workflow-create")).content.decode()
    assert 'value="Sweep BTC nightly"' in page
    assert 'value="2.75"' in page  # the action's own fields are kept too
    assert "What you typed is back" in page
