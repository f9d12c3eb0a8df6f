"""A worker test that also needs the Kraken sandbox gets a worker whose Kraken client uses it."""

from __future__ import annotations

import pytest

from apps.kraken.models import AssetPair
from apps.kraken.tasks import refresh_reference_data

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_task_run_by_the_sandbox_worker_talks_to_the_sandbox(celery_worker_sandbox) -> None:
    summary = refresh_reference_data.delay().get(timeout=60)

    assert summary["pairs"] > 0
    assert AssetPair.objects.filter(kraken_id="XXBTZUSD").exists()


def test_a_plain_worker_test_reuses_the_running_worker(
    celery_worker_sandbox, celery_worker_proc
) -> None:
    assert celery_worker_proc is celery_worker_sandbox
    assert celery_worker_proc.process.poll() is None
