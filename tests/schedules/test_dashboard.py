"""The home page's workflow panel: runs waiting for my approval, recent failures, next runs,
and an empty state that says what to do next."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.schedules.models import Run
from apps.schedules.ticks import schedules_tick
from kraken_portal.celery import app
from tests.market.conftest import market_redis  # noqa: F401 - a fixture frozen_prices uses
from tests.market.test_conversion import frozen_prices  # noqa: F401 - a fixture
from tests.schedules import actions
from tests.schedules.conftest import rewind

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 6, 1, 9, 0, 20, tzinfo=UTC)


@pytest.fixture(autouse=True)
def tasks_run_in_process() -> Iterator[None]:
    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


def home(client_for, member) -> str:
    response = client_for(member).get(reverse("orgs:dashboard", kwargs={"org": member.org.slug}))
    assert response.status_code == 200
    return str(response.content.decode())


def section(page: str, testid: str) -> str:
    start = page.index(f'data-testid="{testid}"')
    return page[start : page.index("</ul>", start)]


@pytest.mark.usefixtures("frozen_prices")
def test_the_panel_lists_runs_waiting_for_me_recent_failures_and_next_runs(
    make_workflow, client_for, treasurer, approver
) -> None:
    User.objects.filter(pk=approver.user_id).update(time_zone="Asia/Tokyo")
    actions.balance_set("BTC", "2")
    workflow = make_workflow(name="Sweep to cold", approval_mode="each_run")
    rewind(workflow, to=NOW - timedelta(minutes=1))
    created = schedules_tick(now=NOW).created
    now = timezone.now()
    waiting = Run.objects.get(pk=created[-1])
    assert waiting.state == Run.State.AWAITING_APPROVAL
    failed = Run.objects.create(
        org=workflow.org,
        workflow=workflow,
        slot="2026-01-01T09:00 Europe/London",
        scheduled_at=now - timedelta(days=1),
        state=Run.State.FAILED,
        outcome="The pretend exchange refused the move.",
        finished_at=now - timedelta(days=1),
        amount=Decimal(1),
    )
    workflow.refresh_from_db()

    page = home(client_for, approver)
    assert "Scheduled workflows" in page
    mine = section(page, "workflows-waiting")
    org = approver.org.slug
    assert reverse("schedules:run-detail", kwargs={"org": org, "pk": waiting.pk}) in mine
    assert "1 BTC" in mine
    review = reverse(
        "approvals:request-detail", kwargs={"org": org, "pk": waiting.approval_request_id}
    )
    assert review in mine
    recent = section(page, "workflows-failed")
    assert "The pretend exchange refused the move." in recent
    upcoming = section(page, "workflows-next")
    assert "Sweep to cold" in upcoming
    # In the approver's own zone: the next slot, 11:00 in London, is 19:00 in Tokyo.
    assert "06-01 19:00 JST" in upcoming

    # The treasurer asked for it: it does not wait for them.
    page = home(client_for, treasurer)
    assert 'data-testid="workflows-waiting"' not in page
    assert failed.outcome in section(page, "workflows-failed")


def test_with_no_workflows_the_panel_says_what_to_do_next(client_for, treasurer, viewer) -> None:
    page = home(client_for, treasurer)
    assert "No workflow is scheduled." in page
    assert reverse("schedules:workflow-create", kwargs={"org": treasurer.org.slug}) in page
    page = home(client_for, viewer)
    assert "No workflow is scheduled." in page
    assert "A treasurer or owner can set one up" in page
    assert reverse("schedules:workflow-create", kwargs={"org": viewer.org.slug}) not in page
