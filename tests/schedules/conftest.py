"""Workflows on the test action (tests/schedules/actions.py), made through the real service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from apps.orgs.models import Membership
from apps.schedules.models import Workflow
from apps.schedules.services import WorkflowInput, workflow_create
from tests.factories import master_account
from tests.schedules import actions


@pytest.fixture(autouse=True)
def pretend_exchange() -> Iterator[None]:
    actions.reset()
    yield
    actions.reset()


def workflow_input(member: Membership, **overrides: Any) -> WorkflowInput:
    values: dict[str, Any] = {
        "name": "Sweep BTC",
        "account_id": master_account(member.org).pk,
        "schedule_kind": "cron",
        "cron": "0 * * * *",
        "timezone": "Europe/London",
        "interval_minutes": None,
        "action": actions.KEY,
        "params": {"asset": "BTC", "keep": "1", "destination": "cold-1"},
        "per_run_cap": Decimal("5"),
        "per_day_cap": Decimal("10"),
        "approval_mode": "each_run",
        "catch_up": "skip",
    }
    values.update(overrides)
    return WorkflowInput(**values)


@pytest.fixture
def make_workflow(treasurer: Membership) -> Callable[..., Workflow]:
    def make(member: Membership | None = None, **overrides: Any) -> Workflow:
        return workflow_create(
            membership=member or treasurer, data=workflow_input(member or treasurer, **overrides)
        )

    return make


def rewind(workflow: Workflow, *, to: datetime) -> Workflow:
    """Put the workflow's cursor at its first slot after `to` (as if created then)."""
    from apps.schedules.services import workflow_next_slot

    slot = workflow_next_slot(workflow, after=to)
    Workflow.objects.filter(pk=workflow.pk).update(next_slot=slot.key, next_slot_at=slot.at)
    workflow.refresh_from_db()
    return workflow


def approve_once(workflow: Workflow) -> Workflow:
    """Record the workflow's terms as approved, as the funding.workflow handler does."""
    from apps.schedules.services import workflow_terms_hash

    Workflow.objects.filter(pk=workflow.pk).update(approved_terms=workflow_terms_hash(workflow))
    workflow.refresh_from_db()
    return workflow
