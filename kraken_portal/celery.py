"""Celery application. Queues: `default`, `orders` (trading), `funding` (withdrawals, transfers)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kraken_portal.settings.base")

app = Celery("kraken_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue("default"), Queue("orders"), Queue("funding")]
app.conf.task_routes = {
    "apps.trading.*": {"queue": "orders"},
    "apps.funding.*": {"queue": "funding"},
}
app.autodiscover_tasks()

# Periodic tasks live here, in one place, each with a comment saying when it runs.
app.conf.beat_schedule = {
    # Every hour: refresh Kraken's asset and pair reference data (decimals, minimums).
    "kraken-refresh-reference-data": {
        "task": "apps.kraken.tasks.refresh_reference_data",
        "schedule": 3600.0,
    },
}
