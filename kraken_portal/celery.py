"""Celery application. Queues: `default`, `orders` (trading), `funding` (withdrawals, transfers).

Rules every task follows (settings in `settings/base.py`, CELERY_*):

- JSON only, for messages and results: a task takes ids and plain values, never model instances
  or pickles, so nothing a broker holds can run code when read.
- Bounded: a soft time limit (60 s) raises inside the task so it can clean up, a hard limit
  (90 s) kills it. A task that needs longer says so in its decorator and stays below the
  visibility timeout.
- One visibility timeout (1 h), for the broker and the result backend alike, longer than any
  task's hard limit: Redis hands an unacknowledged message to another worker only after it, so a
  task still running is never started a second time.
- Acknowledged early by default (`task_acks_late = False`): a worker that dies mid-task loses the
  task rather than running it twice. A task may set `acks_late=True` only when running it twice
  is harmless — it claims its row with a conditional UPDATE, or it only reads and appends a
  report. Anything that talks to Kraken with money at stake (placing an order, a withdrawal) is
  not idempotent unless the service proves it, and so stays early-acked.
- Enqueued with `transaction.on_commit`, so a task never looks for a row that is not committed.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kraken_portal.settings.base")

# Read from the environment, not settings: beat builds its schedule before Django is set up.
EXCHANGE_RECONCILE_EVERY = float(os.environ.get("EXCHANGE_RECONCILE_EVERY", "30"))
STAKING_SNAPSHOT_EVERY = float(os.environ.get("STAKING_SNAPSHOT_EVERY", "3600"))
SCHEDULES_TICK_EVERY = float(os.environ.get("SCHEDULES_TICK_EVERY", "15"))
FUNDING_FOLLOW_EVERY = float(os.environ.get("FUNDING_FOLLOW_EVERY", "15"))

app = Celery("kraken_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each queue has its own exchange and routing key: with bare Queue(name) kombu binds all three
# to the "default" routing key, and a task routed to `orders` would land in `default`.
app.conf.task_queues = [
    Queue(name, Exchange(name, type="direct"), routing_key=name)
    for name in ("default", "orders", "funding")
]
app.conf.update(task_default_exchange="default", task_default_routing_key="default")
app.conf.task_routes = {
    "apps.trading.*": {"queue": "orders"},
    "apps.funding.*": {"queue": "funding"},
}
app.conf.broker_connection_retry_on_startup = True
app.autodiscover_tasks()

# Periodic tasks live here, in one place, each with a comment saying when it runs.
app.conf.beat_schedule = {
    # Every minute: expire approval requests past their expiry and carry out delayed ones (a
    # sole owner's policy loosening) whose 24 hours have passed.
    "approvals-run-due": {
        "task": "apps.approvals.tasks.approvals_run_due_task",
        "schedule": 60.0,
    },
    # Every hour: refresh Kraken's asset and pair reference data (decimals, minimums).
    "kraken-refresh-reference-data": {
        "task": "apps.kraken.tasks.refresh_reference_data",
        "schedule": 3600.0,
    },
    # Nightly at 02:30 UTC: recompute every audit chain; the outcome is itself an audit record
    # (`audit.verify`, or `audit.verify_failed` naming the first broken link).
    "audit-verify-chains": {
        "task": "apps.audit.tasks.audit_verify_task",
        "schedule": crontab(hour=2, minute=30),
    },
    # Daily at 00:05 UTC: publish each chain's head (sequence number and hash) to
    # AUDIT_ANCHOR_DIR, one new file per chain per day, for `audit_verify --anchors`.
    "audit-publish-anchors": {
        "task": "apps.audit.tasks.audit_anchors_publish_task",
        "schedule": crontab(hour=0, minute=5),
    },
    # Every 30 s (EXCHANGE_RECONCILE_EVERY): look for exchange operations whose outcome is
    # unknown (a lost answer, a worker killed mid-send, a lost task) and enqueue one reconcile
    # per operation on its kind's queue. Short, because an UNKNOWN order or withdrawal blocks
    # its business flow; the finders' N spaced misses, not this period, decide NOT_PLACED.
    # Hourly: every account wallet's quantity with the price used then (quantities and
    # prices, never totals, so the reporting currency can change later).
    "exchange-balance-snapshots": {
        "task": "apps.exchange.tasks.balance_snapshots_task",
        "schedule": crontab(minute=0),
    },
    "exchange-reconcile-operations": {
        "task": "apps.exchange.tasks.operations_reconcile_due_task",
        "schedule": EXCHANGE_RECONCILE_EVERY,
    },
    # Every minute: restart the follow-up of staking requests whose chain of looks was lost
    # (a worker died), and close requests whose approval was rejected, expired or cancelled.
    "staking-follow-due": {
        "task": "apps.staking.tasks.stake_requests_follow_due_task",
        "schedule": 60.0,
    },
    # Hourly (STAKING_SNAPSHOT_EVERY): one Earn snapshot per account (quantities and prices),
    # the points of the rewards chart.
    "staking-reward-snapshots": {
        "task": "apps.staking.tasks.reward_snapshots_task",
        "schedule": STAKING_SNAPSHOT_EVERY,
    },
    # Daily at 07:00 UTC: what Earn paid in the last 24 hours (Kraken pays continuously, so a
    # digest rather than one notification per payout).
    "staking-rewards-digest": {
        "task": "apps.staking.tasks.rewards_digest_task",
        "schedule": crontab(hour=7, minute=0),
    },
    # Every 15 s (SCHEDULES_TICK_EVERY, at most 30): claim the workflow slots that are due,
    # exactly once each (a unique constraint on workflow and slot; two beats racing split the
    # work), apply the catch-up rule to slots missed while down, and requeue runs whose task
    # or worker was lost (apps/schedules/ticks.py).
    "schedules-tick": {
        "task": "apps.schedules.tasks.schedules_tick_task",
        "schedule": SCHEDULES_TICK_EVERY,
    },
    # Every 15 s (FUNDING_FOLLOW_EVERY): follow withdrawals Kraken accepted to Success or
    # Failure (WithdrawStatus, one read per key and asset, including Kraken's hold states),
    # and settle withdrawals whose approval ended without sending them.
    "funding-follow-withdrawals": {
        "task": "apps.funding.tasks.withdrawals_follow_task",
        "schedule": FUNDING_FOLLOW_EVERY,
    },
    # Every 15 s: complete transfers Kraken answered `pending` once their ledger entries show.
    "funding-follow-transfers": {
        "task": "apps.funding.tasks.transfers_follow_task",
        "schedule": FUNDING_FOLLOW_EVERY,
    },
}
