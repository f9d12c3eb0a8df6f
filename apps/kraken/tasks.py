"""Celery tasks for Kraken reference data (scheduled in kraken_portal/celery.py)."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from apps.kraken.errors import KrakenError
from apps.kraken.services import reference_data_refresh


@shared_task(
    name="apps.kraken.tasks.refresh_reference_data",
    autoretry_for=(KrakenError,),
    retry_backoff=60,
    retry_backoff_max=600,
    max_retries=3,
    acks_late=True,  # idempotent: an upsert of the same data
)
def refresh_reference_data() -> dict[str, int]:
    """Hourly: upsert Kraken's assets and pairs (decimals, minimums, fees)."""
    return asdict(reference_data_refresh())
