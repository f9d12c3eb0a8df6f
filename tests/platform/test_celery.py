"""The real Celery worker: configuration it runs with, and a task enqueued on commit."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction

from apps.audit.models import AuditRecord
from apps.audit.services import audit_record
from apps.audit.tasks import audit_verify_task
from kraken_portal.celery import app
from tests.plugins.celery_worker import BROKER_PREFIX


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("apps.trading.tasks.order_submit_task", "orders"),
        ("apps.funding.tasks.withdrawal_execute_task", "funding"),
        ("apps.audit.tasks.audit_verify_task", "default"),
    ],
)
def test_tasks_are_routed_to_their_queue_by_app(task, queue) -> None:
    route = app.amqp.router.route({}, task)
    assert route["queue"].name == queue
    assert route["queue"].routing_key == queue
    assert route["queue"].exchange.name == queue


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_consumes_the_three_queues_with_json_and_time_limits(celery_worker_proc) -> None:
    inspect = app.control.inspect([celery_worker_proc.hostname], timeout=5)
    queues = inspect.active_queues()[celery_worker_proc.hostname]
    assert sorted(queue["name"] for queue in queues) == ["default", "funding", "orders"]
    # The worker reports the settings it loaded (Django's CELERY_* names).
    conf = inspect.conf()[celery_worker_proc.hostname]
    assert conf["CELERY_ACCEPT_CONTENT"] == ["json"]
    assert conf["CELERY_TASK_SERIALIZER"] == "json"
    assert conf["CELERY_RESULT_SERIALIZER"] == "json"
    assert (conf["CELERY_TASK_SOFT_TIME_LIMIT"], conf["CELERY_TASK_TIME_LIMIT"]) == (60, 90)
    assert conf["CELERY_TASK_ACKS_LATE"] is False
    # This run's own broker prefix (tests/plugins/celery_worker.py) beside the timeout; Celery
    # masks the prefix's value in its report (a "key"), and the worker answering this run's
    # ping at all shows it is the run's.
    options = conf["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert options["visibility_timeout"] == 3600
    assert "global_keyprefix" in options
    assert app.conf.broker_transport_options["global_keyprefix"] == BROKER_PREFIX
    registered = inspect.registered()[celery_worker_proc.hostname]
    assert "apps.audit.tasks.audit_verify_task" in registered


def enqueue_on_commit() -> list[Any]:
    """Enqueue the verification when the surrounding transaction commits; return its handle."""
    handles: list[Any] = []
    transaction.on_commit(lambda: handles.append(audit_verify_task.delay()))
    return handles


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_on_commit_runs_in_the_worker_and_writes_its_result(
    celery_worker_proc, owner
) -> None:
    with transaction.atomic():
        for i in range(3):
            audit_record(action="test.before", actor=owner, detail={"i": i})
        handles = enqueue_on_commit()
        assert handles == []  # nothing is sent before the data it needs is committed
    outcome = handles[0].get(timeout=60)

    assert outcome == {"ok": True, "chains": 1, "records": 3, "broken": []}
    record = AuditRecord.objects.get(action="audit.verify")
    assert record.chain == "global"
    assert record.detail == outcome


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_records_a_broken_chain_it_finds(celery_worker_proc, owner) -> None:
    records = [audit_record(action="test.before", actor=owner) for _ in range(3)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditrecord DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE audit_auditrecord SET actor_email = 'someone@else.test' WHERE id = %s",
            [records[1].pk],
        )
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditrecord ENABLE TRIGGER USER")

    with transaction.atomic():
        handles = enqueue_on_commit()
    outcome = handles[0].get(timeout=60)

    assert outcome["ok"] is False
    assert outcome["broken"] == [
        f"chain 'org:{owner.org_id}' broken at seq 2 (record id {records[1].pk}): "
        "HMAC mismatch: the record's content or hash was changed"
    ]
    failed = AuditRecord.objects.get(action="audit.verify_failed")
    assert failed.detail["broken"] == outcome["broken"]
