"""Chromium: a treasurer sets up a workflow, watching its next runs previewed as the cron
expression and the zone are typed (a bad zone is named at once), and then watches one of its
runs at work on the run page, live, carried through by a real Celery worker."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.services import totp_device_create
from apps.orgs.models import Membership
from apps.schedules.models import Run, Workflow
from apps.schedules.slots import ZONE_INVALID
from apps.schedules.ticks import schedules_tick
from tests.factories import master_account
from tests.schedules import actions
from tests.schedules.conftest import approve_once, rewind

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_a_workflow_is_created_with_its_runs_previewed_and_a_run_is_seen_executing(
    page: Any,
    portal_server: Any,
    sign_in_browser: Any,
    celery_worker_proc: Any,
    treasurer: Membership,
) -> None:
    master_account(treasurer.org)
    device = totp_device_create(user=treasurer.user, name="Authenticator app", confirmed=True)
    sign_in_browser(page, treasurer.user, device)
    page.goto("/o/acme/schedules/")
    page.get_by_role("link", name="New workflow").click()
    page.get_by_label("Name").fill("Sweep ETH above 10")

    # The preview follows the typing: cron first, then a zone with a typo, then the right one.
    page.get_by_label("Cron expression").fill("*/5 * * * *")
    preview = page.locator("#schedule-preview")
    page.get_by_label("Time zone").fill("America/New_Yrok")
    preview.get_by_text(ZONE_INVALID).wait_for()
    page.get_by_label("Time zone").fill("America/New_York")
    preview.locator("[data-preview-list] li").nth(4).wait_for()
    items = preview.locator("[data-preview-list] li").all_inner_texts()
    assert len(items) == 5
    assert all(re.search(r":[0-5][05] America/New_York", item) for item in items), items

    # Choosing the action brings its own fields.
    page.get_by_label("Action").select_option(actions.KEY)
    page.locator("#id_p-asset").wait_for()
    page.locator("#id_p-asset").fill("ETH")
    page.locator("#id_p-keep").fill("10")
    page.locator("#id_p-destination").fill("cold-eth")
    # Slow enough to be watched at work.
    page.locator("#id_p-delay_ms").fill("3000")
    page.get_by_label("Per-run cap").fill("5")
    page.get_by_label("Per-day cap").fill("20")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Workflow “Sweep ETH above 10” created.").wait_for()
    workflow = Workflow.objects.get(name="Sweep ETH above 10")
    assert workflow.timezone == "America/New_York"
    assert workflow.params["asset"] == "ETH"

    # Approved once with its caps (the approval flow has its own browser test), and a slot due.
    approve_once(workflow)
    actions.balance_set("ETH", "13.5")
    rewind(workflow, to=timezone.now() - timedelta(minutes=6))
    page.get_by_text("No runs yet.").wait_for()
    created = schedules_tick().created
    assert len(created) == 1
    run = Run.objects.get(pk=created[0])

    # The workflow's page lists the run as soon as a worker takes it, without a reload...
    row = page.locator(f"#run-row-{run.pk}")
    row.wait_for(timeout=15_000)
    # ...and its page, opened while it is at work, follows it to the end by itself.
    page.locator(f"#run-table-{workflow.pk} a").first.click()
    card = page.locator(f"#run-{run.pk}")
    card.wait_for()
    at_open = card.locator("header [data-state]").first.get_attribute("data-state")
    assert at_open in {"running", "executing"}, at_open
    card.locator('header [data-state="executing"]').wait_for(timeout=15_000)
    card.locator('header [data-state="succeeded"]').wait_for(timeout=20_000)
    assert "Move the 3.5 ETH above the 10 kept." in card.inner_text()
    assert "spendable ETH: 13.5" in card.inner_text()
    assert "Moved 3.5 ETH" in card.inner_text()
    assert page.console_errors == []
