from __future__ import annotations

from celery import shared_task

from apps.approvals.services import approvals_run_due


# Every minute (kraken_portal/celery.py): expire overdue requests, run delayed ones now due.
# Each request is claimed under its row lock, so an overlapping run finds nothing to redo.
@shared_task(ignore_result=True)
def approvals_run_due_task() -> int:
    return approvals_run_due()
